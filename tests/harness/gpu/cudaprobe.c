/* Runs inside a container: dlopen("libcuda.so.1") as CUDA programs do,
 * then print what the fake driver says.  Exit 2 when it cannot load. */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW);
	int (*version)(int *), (*count)(int *), (*init)(unsigned);
	const char *(*driver)(void);
	int v = 0, n = -1;

	if (!h) {
		fprintf(stderr, "cudaprobe: %s\n", dlerror());
		return 2;
	}
	version = (int (*)(int *))dlsym(h, "cuDriverGetVersion");
	count = (int (*)(int *))dlsym(h, "cuDeviceGetCount");
	init = (int (*)(unsigned))dlsym(h, "cuInit");
	driver = (const char *(*)(void))dlsym(h, "berth_fake_driver_version");
	if (!version || !count || !init || !driver || init(0) != 0 || version(&v) != 0 ||
	    count(&n) != 0) {
		fprintf(stderr, "cudaprobe: symbols missing or failing\n");
		return 3;
	}
	printf("driver %s cuda %d devices %d\n", driver(), v, n);
	return 0;
}
