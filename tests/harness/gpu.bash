# shellcheck shell=bash
# A fake NVIDIA driver tree for machines without a GPU (load after lib):
#
#   gpu_tree DIR     build the tree berth reads with BERTH_GPU_DRIVER_ROOT=DIR:
#     proc/driver/nvidia/version           "NVRM version: ... Kernel Module  $VER ..."
#     proc/driver/nvidia/gpus/BUS/information   3 GPUs; index order (bus id)
#                                          0000:3b:00.0 minor 0, 0000:5e:00.0 minor 2,
#                                          0000:86:00.0 minor 1 (index != minor)
#     dev/nvidia{0,1,2,ctl,-uvm,-uvm-tools,-modeset}   regular files "fake DEV"
#     usr/lib/x86_64-linux-gnu/lib*.so.$VER  built with -Wl,-soname: libcuda
#                                          (cuDriverGetVersion, cuInit,
#                                          cuDeviceGetCount, berth_fake_driver_version),
#                                          libnvidia-ml, -cfg, -ptxjitcompiler,
#                                          -encode (video), -eglcore, libGLX_nvidia (graphics)
#     etc/ld.so.cache                      ldconfig -r DIR (-c $GPU_CACHE_FORMAT)
#     usr/bin/nvidia-smi, nvidia-debugdump fake scripts
#     usr/share/vulkan/icd.d/nvidia_icd.json, run/nvidia-persistenced/socket
#     sys/bus/pci/devices/BUS/{local_cpulist,numa_node}   GPU 0 -> cpu 0,
#                                          GPU 1 -> cpu 1, GPU 2 -> cpus 0-1
#   Knobs: GPU_VERSION (550.54.15), GPU_CUDA (12040), GPU_CACHE_FORMAT
#   (new|compat|old), GPU_MIXED=1 (libnvidia-ml of driver 535.54.03).
#
#   gpu_amd_tree DIR a fake AMD node: dev/kfd, dev/dri/renderD128 and 129, and
#                    the KFD topology (node 0 a CPU, nodes 1-2 the GPUs).
#
#   gpu_image DIR    an OCI layout: busybox + the host's glibc, static
#                    ldconfig, /usr/local/bin/cudaprobe (dlopens libcuda.so.1);
#                    Env NVIDIA_VISIBLE_DEVICES=all, NVIDIA_DRIVER_CAPABILITIES=
#                    compute,utility, CUDA_VERSION=12.4.0 and $GPU_IMAGE_ENV
#                    (extra NAME=VALUE words); $GPU_IMAGE_COMPAT=VER adds
#                    /usr/local/cuda/compat/libcuda.so.VER.

GPU_SRC=$HARNESS_DIR/gpu
GPU_LIBDIR=usr/lib/x86_64-linux-gnu

gpu_lib() { # DIR FILE SONAME NAME
	gcc -shared -fPIC -o "$1/$GPU_LIBDIR/$2" -Wl,-soname,"$3" \
		-DFAKE_NAME="\"$4\"" "$GPU_SRC/fakelib.c"
}

gpu_info() { # DIR BUS MINOR UUID
	mkdir -p "$1/proc/driver/nvidia/gpus/$2"
	printf 'Model: \t\t NVIDIA Fake A100\nIRQ:   \t\t 0\nGPU UUID: \t %s\nVideo BIOS: \t ??.??.??.??.??\nBus Type: \t PCIe\nDMA Size: \t 47 bits\nBus Location: \t %s\nDevice Minor: \t %s\nGPU Excluded:\t No\n' \
		"$4" "$2" "$3" >"$1/proc/driver/nvidia/gpus/$2/information"
}

gpu_tree() {
	local dir=$1 ver=${GPU_VERSION:-550.54.15} cuda=${GPU_CUDA:-12040} d bus cpus
	local -a fmt=()
	[[ -n ${GPU_CACHE_FORMAT:-} ]] && fmt=(-c "$GPU_CACHE_FORMAT")
	mkdir -p "$dir"/{dev,etc,usr/bin,"$GPU_LIBDIR",proc/driver/nvidia,run/nvidia-persistenced} \
		"$dir/usr/share/vulkan/icd.d"
	printf 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n' \
		"$ver" >"$dir/proc/driver/nvidia/version"
	gpu_info "$dir" 0000:3b:00.0 0 GPU-11111111-2222-3333-4444-000000000000
	gpu_info "$dir" 0000:5e:00.0 2 GPU-11111111-2222-3333-4444-000000000001
	gpu_info "$dir" 0000:86:00.0 1 GPU-11111111-2222-3333-4444-000000000002
	for d in nvidia0 nvidia1 nvidia2 nvidiactl nvidia-uvm nvidia-uvm-tools nvidia-modeset; do
		echo "fake $d" >"$dir/dev/$d"
	done
	for bus in 0000:3b:00.0:0:0 0000:5e:00.0:1:1 0000:86:00.0:0-1:-1; do
		cpus=${bus#*.?:}
		d=$dir/sys/bus/pci/devices/${bus%%.?:*}.${bus:11:1}
		mkdir -p "$d"
		echo "${cpus%%:*}" >"$d/local_cpulist"
		echo "${cpus#*:}" >"$d/numa_node"
	done
	gcc -shared -fPIC -o "$dir/$GPU_LIBDIR/libcuda.so.$ver" -Wl,-soname,libcuda.so.1 \
		-DFAKE_CUDA_VERSION="$cuda" -DFAKE_DRIVER_VERSION="\"$ver\"" "$GPU_SRC/fakecuda.c" ||
		return 1
	local mlver=$ver
	[[ -n ${GPU_MIXED:-} ]] && mlver=535.54.03
	gpu_lib "$dir" "libnvidia-ml.so.$mlver" libnvidia-ml.so.1 nvml
	gpu_lib "$dir" "libnvidia-cfg.so.$ver" libnvidia-cfg.so.1 cfg
	gpu_lib "$dir" "libnvidia-ptxjitcompiler.so.$ver" libnvidia-ptxjitcompiler.so.1 ptxjit
	gpu_lib "$dir" "libnvidia-encode.so.$ver" libnvidia-encode.so.1 encode
	gpu_lib "$dir" "libnvidia-eglcore.so.$ver" "libnvidia-eglcore.so.$ver" eglcore
	gpu_lib "$dir" "libGLX_nvidia.so.$ver" libGLX_nvidia.so.0 glx
	echo "/$GPU_LIBDIR" >"$dir/etc/ld.so.conf"
	ldconfig -r "$dir" "${fmt[@]}" || return 1
	sed "s/@VERSION@/$ver/" "$GPU_SRC/nvidia-smi" >"$dir/usr/bin/nvidia-smi"
	printf '#!/bin/sh\necho nvidia-debugdump fake\n' >"$dir/usr/bin/nvidia-debugdump"
	chmod 0755 "$dir/usr/bin/nvidia-smi" "$dir/usr/bin/nvidia-debugdump"
	echo '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0"}}' \
		>"$dir/usr/share/vulkan/icd.d/nvidia_icd.json"
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
		"$dir/run/nvidia-persistenced/socket"
	chmod -R a+rX "$dir"
}

gpu_image() {
	local dir=$1 probe
	probe=$(harness_rundir)/cudaprobe
	gcc -O2 -o "$probe" "$GPU_SRC/cudaprobe.c" -ldl || return 1
	harness_busybox_spec >"$dir.busybox.json" || return 1
	# shellcheck disable=SC2086 # GPU_IMAGE_ENV is a list of words
	python3 - "$dir.busybox.json" "$probe" "${GPU_IMAGE_COMPAT:-}" ${GPU_IMAGE_ENV:-} \
		>"$dir.json" <<-'EOF' || return 1
		import json, os, sys
		spec = json.load(open(sys.argv[1]))
		probe, compat, extra = sys.argv[2], sys.argv[3], sys.argv[4:]
		e = spec["layers"][0]["entries"]
		for d in ("lib", "lib64", "lib/x86_64-linux-gnu", "usr/local", "usr/local/bin",
		          "etc/ld.so.conf.d"):
		    e.append({"path": d, "type": "dir"})
		def real(p):
		    return os.path.realpath(p)
		e.append({"path": "lib64/ld-linux-x86-64.so.2", "type": "file", "mode": "0755",
		          "source": real("/lib64/ld-linux-x86-64.so.2")})
		e.append({"path": "lib/x86_64-linux-gnu/libc.so.6", "type": "file", "mode": "0755",
		          "source": real("/lib/x86_64-linux-gnu/libc.so.6")})
		e = [x for x in e if x["path"] != "sbin/ldconfig"]
		e.append({"path": "sbin/ldconfig", "type": "file", "mode": "0755",
		          "source": real("/sbin/ldconfig")})
		e.append({"path": "etc/ld.so.conf", "type": "file",
		          "content": "include /etc/ld.so.conf.d/*.conf\n/lib/x86_64-linux-gnu\n"})
		e.append({"path": "usr/local/bin/cudaprobe", "type": "file", "mode": "0755",
		          "source": probe})
		if compat:
		    for d in ("usr/local/cuda", "usr/local/cuda/compat"):
		        e.append({"path": d, "type": "dir"})
		    lib = os.environ["GPU_COMPAT_LIB"]
		    e.append({"path": "usr/local/cuda/compat/libcuda.so." + compat, "type": "file",
		              "mode": "0755", "source": lib})
		spec["layers"][0]["entries"] = e
		env = spec["config"]["Env"] + ["NVIDIA_VISIBLE_DEVICES=all",
		      "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "CUDA_VERSION=12.4.0"]
		names = {x.split("=", 1)[0] for x in extra}
		spec["config"]["Env"] = [x for x in env if x.split("=", 1)[0] not in names] + extra
		print(json.dumps(spec))
	EOF
	rm -rf "$dir"
	mkimage "$dir.json" "$dir" >/dev/null || return 1
	chmod -R a+rX "$dir"
}

gpu_amd_tree() {
	local dir=$1 n
	mkdir -p "$dir/dev/dri"
	echo "fake kfd" >"$dir/dev/kfd"
	for n in 128 129; do
		echo "fake renderD$n" >"$dir/dev/dri/renderD$n"
	done
	echo "fake card0" >"$dir/dev/dri/card0"
	for n in 0 1 2; do
		mkdir -p "$dir/sys/class/kfd/kfd/topology/nodes/$n"
		if [[ $n == 0 ]]; then
			echo 0 >"$dir/sys/class/kfd/kfd/topology/nodes/$n/gpu_id"
			echo "cpu_cores_count 2" >"$dir/sys/class/kfd/kfd/topology/nodes/$n/properties"
		else
			echo $((4000 + n)) >"$dir/sys/class/kfd/kfd/topology/nodes/$n/gpu_id"
			printf 'simd_count 4\ndrm_render_minor %d\nunique_id %d\n' $((127 + n)) \
				$((900 + n)) >"$dir/sys/class/kfd/kfd/topology/nodes/$n/properties"
		fi
	done
	chmod -R a+rX "$dir"
}
