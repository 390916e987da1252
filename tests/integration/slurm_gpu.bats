#!/usr/bin/env bats
# spank_berth.so with Slurm's gres/gpu on a fake NVIDIA driver tree
# (tests/harness/gpu.bash): the node has 3 "GPUs" whose /dev/nvidiaN are
# device nodes made here (slurmd accepts only character or block devices
# in gres.conf File=; nothing can open them, nothing needs to).  A step
# sees exactly the GPUs Slurm allocated it, CUDA_VISIBLE_DEVICES names them
# as inside, and gpu_affinity binds tasks to their GPUs' cores.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm
load ../harness/gpu

setup_file() {
	require_root
	skip_unless gcc ldconfig busybox mknod || return 1
	local d n
	d=$(harness_rundir)/slurm-gpu
	rm -rf --one-file-system "$d"
	mkdir -p "$d"
	gpu_tree "$d/nv" || return 1
	# fake tree: GPU index 0 = minor 0 (cpu 0), index 1 = minor 2 (cpu 1),
	# index 2 = minor 1 (cpus 0-1)
	for n in 0 1 2; do
		rm "$d/nv/dev/nvidia$n"
		mknod -m 0666 "$d/nv/dev/nvidia$n" c 195 "$n"
	done
	gpu_image "$d/img" || return 1
	harness_busybox_spec >"$d/plain.json" && mkimage "$d/plain.json" "$d/plain" >/dev/null
	chmod -R a+rX "$d"
	as_user "$BERTH" import -q -o "$USER_DIR/work/gpu.sqsh" "oci-dir://$d/img" >/dev/null
	as_user "$BERTH" import -q -o "$USER_DIR/work/plain.sqsh" "oci-dir://$d/plain" >/dev/null
	export BERTH_GPU_DRIVER_ROOT=$d/nv
	slurm_berth_env g
	export SLURM_NODE_GRES=gpu:3 SLURM_GRES_CONF="Name=gpu File=$d/nv/dev/nvidia[0-2]"
	slurm_start
}

teardown_file() {
	slurm_berth_stop
}

@test "--gres=gpu:1: exactly the allocated GPU inside, libcuda loads, nvidia-smi runs" {
	run usrun -n 1 --gres=gpu:1 --container-image=./gpu.sqsh sh -c '
		echo "step $SLURM_STEP_GPUS"
		echo "devs $(ls /dev | grep -E "^nvidia[0-9]" | tr "\n" " ")"
		echo "ctl $(ls /dev/nvidiactl)"
		echo "cuda $CUDA_VISIBLE_DEVICES"
		/usr/local/bin/cudaprobe; nvidia-smi | head -n 1'
	echo "$output"
	[ "$status" -eq 0 ]
	local gpu=${lines[0]#step }
	[[ $gpu =~ ^[0-2]$ ]]
	[ "${lines[1]}" = "devs nvidia$gpu " ]
	[ "${lines[2]}" = "ctl /dev/nvidiactl" ]
	[ "${lines[3]}" = "cuda 0" ]
	grep -q '^driver 550.54.15 cuda 12040 devices 1$' <<<"$output"
	grep -q 'Driver Version: 550.54.15' <<<"$output"
}

@test "--gres=gpu:2 with 2 tasks: both GPUs in the shared container, renumbered 0,1" {
	run usrun -n 2 --gres=gpu:2 --container-image=./gpu.sqsh sh -c '
		echo "$SLURM_STEP_GPUS|$(ls /dev | grep -E "^nvidia[0-9]" | tr "\n" " ")|$CUDA_VISIBLE_DEVICES"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "${lines[1]}" ]
	local ids devs cuda want="" id
	IFS='|' read -r ids devs cuda <<<"${lines[0]}"
	for id in ${ids//,/ }; do want+="nvidia$id "; done
	[ "$devs" = "$want" ]
	[ "$cuda" = 0,1 ]
	# the third GPU is not there
	[ "$(wc -w <<<"$devs")" -eq 2 ]
}

@test "gpu_affinity: tasks bound to their GPU's cores; off with gpu_affinity=0" {
	local conf=$SLURM_DIR/plugstack.conf on off
	# GPU minor 0 is local to cpu 0, minor 2 to cpu 1 (gpu_tree); take
	# whichever Slurm gives and compare with the tree's local_cpulist
	run usrun -n 1 --gres=gpu:1 --container-image=./gpu.sqsh sh -c \
		'echo $SLURM_STEP_GPUS; grep Cpus_allowed_list /proc/self/status | cut -f2'
	echo "$output"
	[ "$status" -eq 0 ]
	on=${lines[1]}
	local bus
	bus=$(grep -l "Device Minor:[[:space:]]*${lines[0]}\$" "$BERTH_GPU_DRIVER_ROOT"/proc/driver/nvidia/gpus/*/information)
	bus=$(basename "$(dirname "$bus")")
	[ "$on" = "$(cat "$BERTH_GPU_DRIVER_ROOT/sys/bus/pci/devices/$bus/local_cpulist")" ]
	cp "$conf" "$conf.orig"
	sed -i 's/$/ gpu_affinity=0/' "$conf"
	run usrun -n 1 --gres=gpu:1 --container-image=./gpu.sqsh sh -c \
		'grep Cpus_allowed_list /proc/self/status | cut -f2'
	off=$output
	mv "$conf.orig" "$conf"
	[ "$off" = "$(grep Cpus_allowed_list /proc/self/status | cut -f2)" ]
}

@test "no GPU asked for: nothing added; a GPU that cannot be given: one clear line" {
	run usrun -n 1 --container-image=./plain.sqsh sh -c 'ls /dev | grep -c nvidia || true'
	[ "$status" -eq 0 ]
	[ "$output" = 0 ]
	AS_USER_ENV=(NVIDIA_VISIBLE_DEVICES)
	export NVIDIA_VISIBLE_DEVICES=7
	run usrun -n 1 --gres=gpu:1 --container-image=./gpu.sqsh true
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q "NVIDIA_VISIBLE_DEVICES '7': no GPU '7' on this node" <<<"$output"
	export NVIDIA_VISIBLE_DEVICES=void
	run usrun -n 1 --gres=gpu:1 --container-image=./gpu.sqsh sh -c 'ls /dev | grep -c nvidia || true'
	[ "$output" = 0 ]
}
