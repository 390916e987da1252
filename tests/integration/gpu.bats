#!/usr/bin/env bats
# GPUs in containers, on a fake NVIDIA driver tree (tests/harness/gpu.bash):
# which devices and libraries land inside for each NVIDIA_VISIBLE_DEVICES /
# capabilities combination, libcuda loads, nvidia-smi runs, requirements,
# bad input.  Everything runs as the unprivileged test user.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
load ../harness/gpu

setup_file() {
	local d
	skip_unless gcc ldconfig busybox || return 1
	harness_find_berth
	d=$(harness_rundir)/gpu
	rm -rf --one-file-system "$d"
	mkdir -p "$d"
	chmod 0755 "$d"
	gpu_tree "$d/nv" || return 1
	GPU_CACHE_FORMAT=old gpu_tree "$d/nv-old" || return 1
	GPU_CACHE_FORMAT=compat gpu_tree "$d/nv-compat" || return 1
	GPU_MIXED=1 gpu_tree "$d/nv-mixed" || return 1
	cp -a "$d/nv" "$d/nv-nodev" && rm "$d/nv-nodev/dev/nvidia2"
	cp -a "$d/nv" "$d/nv-nocache" && rm "$d/nv-nocache/etc/ld.so.cache"
	gpu_amd_tree "$d/amd"
	# A newer driver's libcuda for the forward-compat image.
	gcc -shared -fPIC -o "$d/libcuda-compat.so" -Wl,-soname,libcuda.so.1 \
		-DFAKE_CUDA_VERSION=12060 -DFAKE_DRIVER_VERSION='"560.28.03"' \
		"$GPU_SRC/fakecuda.c" || return 1
	gpu_image "$d/img" || return 1
	GPU_IMAGE_ENV="CUDA_VERSION=12.6.0 NVIDIA_REQUIRE_CUDA=cuda>=12.6" GPU_IMAGE_COMPAT=560.28.03 \
		GPU_COMPAT_LIB="$d/libcuda-compat.so" gpu_image "$d/img-compat" || return 1
	GPU_IMAGE_ENV="CUDA_VERSION=12.6.0 NVIDIA_REQUIRE_CUDA=cuda>=12.6" gpu_image "$d/img-new" ||
		return 1
	harness_busybox_spec >"$d/plain.json" && mkimage "$d/plain.json" "$d/plain" >/dev/null
	chmod -R a+rX "$d"
	for i in img img-compat img-new plain; do
		as_user "$BERTH" import "oci-dir://$d/$i" 2>/dev/null | tail -n 1 >"$d/$i.path" || return 1
	done
	export GPU_DIR_T=$d
}

img() { cat "$GPU_DIR_T/$1.path"; }

# berth run on the fake tree ($TREE, default nv) with NAME=VALUE words first.
grun() {
	local -a envs=()
	while [[ $1 =~ ^[A-Z_][A-Z0-9_]*= ]]; do
		envs+=("$1")
		shift
	done
	as_user env BERTH_GPU_DRIVER_ROOT="$GPU_DIR_T/${TREE:-nv}" "${envs[@]}" "$BERTH" run "$@"
}

keepers() {
	ls "$USER_DIR/run/berth-$(id -u "$BERTH_TEST_USER")/keepers" 2>/dev/null | sort
}

@test "all GPUs: every device, compute+utility libraries, libcuda loads, nvidia-smi runs" {
	run grun "$(img img)" sh -c 'ls /dev | grep nvidia | sort | tr "\n" " "; echo;
		ls /usr/local/berth-gpu/lib | tr "\n" " "; echo;
		/usr/local/bin/cudaprobe; nvidia-smi; nvidia-debugdump'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "nvidia-modeset nvidia-uvm nvidia-uvm-tools nvidia0 nvidia1 nvidia2 nvidiactl " ]]
	[[ ${lines[1]} == *"libcuda.so.1 libcuda.so.550.54.15 "* ]]
	[[ ${lines[1]} == *"libnvidia-ml.so.1 libnvidia-ml.so.550.54.15"* ]]
	[[ ${lines[1]} == *"libnvidia-ptxjitcompiler.so.550.54.15"* ]]
	[[ ${lines[1]} != *encode* && ${lines[1]} != *eglcore* && ${lines[1]} != *GLX* ]]
	[[ ${lines[2]} == "driver 550.54.15 cuda 12040 devices 3" ]]
	[[ ${lines[3]} == *"Driver Version: 550.54.15"* ]]
	[[ $output == *"nvidia-debugdump fake"* ]]
}

@test "the container's ld cache finds the driver, and the libraries are read-only" {
	run grun "$(img img)" sh -c 'ldconfig -p | grep -E "libcuda|libnvidia-ml";
		echo x > /usr/local/berth-gpu/lib/libcuda.so.550.54.15 && echo WRITABLE'
	echo "$output"
	[[ $output == *"libcuda.so.1 (libc6,x86-64) => /usr/local/berth-gpu/lib/libcuda.so.1"* ]]
	[[ $output == *"libnvidia-ml.so.1 (libc6,x86-64) => /usr/local/berth-gpu/lib/libnvidia-ml.so.1"* ]]
	[[ $output != *WRITABLE* ]]
}

@test "NVIDIA_VISIBLE_DEVICES by index and by UUID: only those GPUs (index 1 is /dev/nvidia2)" {
	run grun NVIDIA_VISIBLE_DEVICES=1 "$(img img)" sh -c 'ls /dev | grep -E "^nvidia[0-9]"; /usr/local/bin/cudaprobe'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = nvidia2 ]
	[ "${lines[1]}" = "driver 550.54.15 cuda 12040 devices 1" ]
	run grun NVIDIA_VISIBLE_DEVICES=GPU-11111111-2222-3333-4444-000000000002,0 "$(img img)" \
		sh -c 'ls /dev | grep -E "^nvidia[0-9]" | tr "\n" " "'
	[ "$status" -eq 0 ]
	[ "$output" = "nvidia0 nvidia1 " ]
}

@test "NVIDIA_VISIBLE_DEVICES=none: driver and control devices, no GPU; void: nothing at all" {
	run grun NVIDIA_VISIBLE_DEVICES=none "$(img img)" sh -c 'ls /dev | grep nvidia | tr "\n" " "; ls /usr/local/berth-gpu/lib | grep -c libcuda'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "nvidia-modeset nvidia-uvm nvidia-uvm-tools nvidiactl 2" ]
	run grun NVIDIA_VISIBLE_DEVICES=void "$(img img)" sh -c 'ls /dev | grep -c nvidia; ls /usr/local'
	[ "$status" -eq 0 ]
	[ "$output" = "0
bin" ]
}

@test "--gpus overrides the environment; the image's own setting is used without either" {
	# The image says NVIDIA_VISIBLE_DEVICES=all; the job's value wins.
	run grun "$(img img)" sh -c 'ls /dev | grep -cE "^nvidia[0-9]"'
	[ "$status" -eq 0 ] && [ "$output" = 3 ]
	run grun NVIDIA_VISIBLE_DEVICES=0 "$(img img)" sh -c 'ls /dev | grep -cE "^nvidia[0-9]"'
	[ "$status" -eq 0 ] && [ "$output" = 1 ]
	run grun NVIDIA_VISIBLE_DEVICES=all --gpus=2 "$(img img)" sh -c 'ls /dev | grep -E "^nvidia[0-9]"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = nvidia1 ]
}

@test "capabilities choose the libraries: utility only, then video+graphics with the Vulkan ICD" {
	run grun NVIDIA_DRIVER_CAPABILITIES=utility "$(img img)" sh -c 'ls /usr/local/berth-gpu/lib | tr "\n" " "; nvidia-smi | head -n 1'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *libnvidia-ml.so.1* && $output != *libcuda* ]]
	[[ $output == *"Driver Version"* ]]
	run grun NVIDIA_DRIVER_CAPABILITIES=compute,video,graphics "$(img img)" sh -c 'ls /usr/local/berth-gpu/lib | tr "\n" " "; cat /usr/share/vulkan/icd.d/nvidia_icd.json; command -v nvidia-smi || echo no-smi'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *libnvidia-encode.so.1* && $output == *libnvidia-eglcore.so.550.54.15* ]]
	[[ $output == *libGLX_nvidia.so.0* && $output == *libcuda.so.1* && $output != *libnvidia-ml* ]]
	[[ $output == *'"library_path": "libGLX_nvidia.so.0"'* ]]
	[[ $output == *no-smi* ]]
}

@test "CUDA_VISIBLE_DEVICES keeps naming the same GPUs inside" {
	# Host index 2 is the second of the selected {1, 2}: inside it is 1.
	run grun NVIDIA_VISIBLE_DEVICES=1,2 CUDA_VISIBLE_DEVICES=2 "$(img img)" sh -c 'echo $CUDA_VISIBLE_DEVICES'
	[ "$status" -eq 0 ]
	[ "$output" = 1 ]
	# Slurm: step GPUs are minors 1,2 (indexes 2,1).  Local index 1 is the
	# second of them in CUDA's (PCI) order: index 2, alone inside: 0.
	run grun SLURM_STEP_GPUS=1,2 NVIDIA_VISIBLE_DEVICES=2 CUDA_VISIBLE_DEVICES=1 "$(img img)" sh -c 'ls /dev | grep -E "^nvidia[0-9]" | tr "\n" " "; echo $CUDA_VISIBLE_DEVICES'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "nvidia1 0" ]
	# Slurm's global ids (no device cgroup): 2 is /dev/nvidia2 = index 1 = inside 0.
	run grun SLURM_STEP_GPUS=1,2 CUDA_VISIBLE_DEVICES=2 "$(img img)" sh -c 'echo $CUDA_VISIBLE_DEVICES'
	[ "$status" -eq 0 ]
	[ "$output" = 0 ]
}

@test "a Slurm allocation limits the GPUs; asking for one outside it is an error" {
	run grun SLURM_JOB_GPUS=0 "$(img img)" sh -c 'ls /dev | grep -E "^nvidia[0-9]"'
	[ "$status" -eq 0 ]
	[ "$output" = nvidia0 ]
	run grun SLURM_STEP_GPUS=0 NVIDIA_VISIBLE_DEVICES=1 "$(img img)" true
	[ "$status" -eq 1 ]
	[[ $output == "berth: NVIDIA_VISIBLE_DEVICES '1': GPU 1 (GPU-11111111-2222-3333-4444-000000000001) is not allocated to this job"* ]]
}

@test "NVIDIA_REQUIRE_CUDA: met, unmet (both versions named), disabled, met by forward-compat libs" {
	run grun NVIDIA_REQUIRE_CUDA='cuda>=12.2' "$(img img)" true
	[ "$status" -eq 0 ]
	run grun "$(img img-new)" true
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth: image requires 'cuda>=12.6' (NVIDIA_REQUIRE_CUDA) but driver 550.54.15 supports CUDA 12.4"* ]]
	run grun NVIDIA_DISABLE_REQUIRE=1 "$(img img-new)" true
	[ "$status" -eq 0 ]
	# The image ships libcuda 560 in /usr/local/cuda/compat: used instead.
	run grun "$(img img-compat)" /usr/local/bin/cudaprobe
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "driver 560.28.03 cuda 12060 devices 3" ]
}

@test "old and compat ld.so.cache formats are read too" {
	for t in nv-old nv-compat; do
		TREE=$t run grun "$(img img)" /usr/local/bin/cudaprobe
		echo "$t: $output"
		[ "$status" -eq 0 ]
		[ "$output" = "driver 550.54.15 cuda 12040 devices 3" ]
	done
}

@test "no GPU bits when not asked, or on a node without GPUs" {
	run grun "$(img plain)" sh -c 'ls /dev | grep -c nvidia; ls /usr/local 2>&1; exit 0'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == 0 && $output != *berth-gpu* ]]
	# The real driver root of this machine has no GPU: a CUDA image still runs.
	run as_user "$BERTH" run "$(img img)" sh -c 'ls /dev | grep -c nvidia; ls /usr/local'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "0
bin" ]
	run as_user "$BERTH" run --gpus=all "$(img plain)" true
	[ "$status" -eq 1 ]
	[[ $output == "berth: --gpus 'all': this node has no GPU"* ]]
}

@test "bad input: one line each, exit 1, no container started" {
	local before
	harness_user_dir
	before=$(keepers)
	run grun NVIDIA_VISIBLE_DEVICES=7 "$(img img)" true
	[ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth: NVIDIA_VISIBLE_DEVICES '7': no GPU '7' on this node (3 GPUs, indexes 0-2"* ]]
	run grun NVIDIA_VISIBLE_DEVICES=GPU-deadbeef-0000 "$(img img)" true
	[ "$status" -eq 1 ] && [[ $output == *"no GPU 'GPU-deadbeef-0000'"* ]]
	run grun --gpus=0,x/../y "$(img img)" true
	[ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ]
	run grun NVIDIA_DRIVER_CAPABILITIES=compute,gaming "$(img img)" true
	[ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ]
	[[ $output == *"unknown driver capability 'gaming'"* ]]
	run grun NVIDIA_REQUIRE_CUDA='cuda=>12' "$(img img)" true
	[ "$status" -eq 1 ] && [[ $output == *"malformed constraint 'cuda=>12'"* ]]
	TREE=nv-mixed run grun "$(img img)" true
	[ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ]
	[[ $output == *"libnvidia-ml.so.1' is 'libnvidia-ml.so.535.54.03', not version 550.54.15"* ]]
	TREE=nv-nodev run grun NVIDIA_VISIBLE_DEVICES=1 "$(img img)" true
	[ "$status" -eq 1 ]
	[[ $output == "berth: GPU 1 (GPU-11111111-2222-3333-4444-000000000001): device '"*"/dev/nvidia2' is missing" ]]
	TREE=nv-nocache run grun "$(img img)" true
	[ "$status" -eq 1 ] && [[ $output == *"ld.so.cache"* ]]
	TREE=does-not-exist run grun "$(img img)" true
	[ "$status" -eq 1 ] && [[ $output == *"GPU driver root '"*"does-not-exist' (gpu_driver_root): No such file or directory" ]]
	# Refused while planning: no container (keeper) was started for any.
	[ -z "$(comm -13 <(echo "$before") <(keepers))" ]
	run grun --readonly "$(img img)" true
	[ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ]
	[[ $output == *"GPU driver libraries need a writable container"* ]]
}

@test "berth gpus lists index, device, UUID, NUMA node and local cores" {
	run as_user env BERTH_GPU_DRIVER_ROOT="$GPU_DIR_T/nv" "$BERTH" gpus
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "NVIDIA driver 550.54.15, 3 GPUs" ]
	[[ ${lines[2]} =~ ^0\ +nvidia0\ +GPU-11111111-2222-3333-4444-000000000000\ +0000:3b:00.0\ +0\ +0\  ]]
	[[ ${lines[3]} =~ ^1\ +nvidia2\ +GPU-11111111-2222-3333-4444-000000000001\ +0000:5e:00.0\ +1\ +1\  ]]
	[[ ${lines[4]} =~ ^2\ +nvidia1\ +.*\ +-\ +0-1\  ]]
	run as_user "$BERTH" gpus
	[ "$status" -eq 0 ]
	[[ $output == "no GPU below driver root '/'" ]]
}

@test "--gpu-affinity binds to the GPU's cores unless already bound" {
	[ "$(nproc)" -ge 2 ] || skip "needs 2 CPUs"
	run grun --gpus=1 --gpu-affinity "$(img img)" sh -c 'grep Cpus_allowed_list /proc/self/status'
	echo "$output"
	[ "$status" -eq 0 ] && [[ $output == *$'\t'1 ]]
	run grun --gpus=0 --gpu-affinity "$(img img)" sh -c 'grep Cpus_allowed_list /proc/self/status'
	[[ $output == *$'\t'0 ]]
	run grun --gpus=0 "$(img img)" sh -c 'grep Cpus_allowed_list /proc/self/status'
	[[ $output == *$'\t'0-1 ]]
	run as_user env BERTH_GPU_DRIVER_ROOT="$GPU_DIR_T/nv" taskset -c 1 "$BERTH" run --gpus=0 \
		--gpu-affinity "$(img img)" sh -c 'grep Cpus_allowed_list /proc/self/status'
	[[ $output == *$'\t'1 ]]
}

@test "AMD: --gpus binds /dev/kfd and the selected render nodes, honouring ROCR_VISIBLE_DEVICES" {
	TREE=amd run grun --gpus=1 "$(img plain)" sh -c 'ls /dev/kfd /dev/dri'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "/dev/kfd

/dev/dri:
renderD129" ]
	TREE=amd run grun ROCR_VISIBLE_DEVICES=1 --gpus=all "$(img plain)" sh -c 'ls /dev/dri; echo $ROCR_VISIBLE_DEVICES'
	[ "$status" -eq 0 ]
	[ "$output" = "renderD129
0" ]
	TREE=amd run grun "$(img plain)" sh -c 'ls /dev/kfd 2>&1; ls /dev/dri 2>&1'
	[[ $output == *"No such file"* ]]
	TREE=amd run grun --gpus=5 "$(img plain)" true
	[ "$status" -eq 1 ] && [[ $output == "berth: --gpus '5': no GPU '5' on this node (2 GPUs"* ]]
}
