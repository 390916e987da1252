/* A stand-in for the NVIDIA driver's libcuda.so.<version>: the few entry
 * points berth and the tests call, with the real names and signatures. */
#include <dirent.h>
#include <string.h>

#ifndef FAKE_CUDA_VERSION
#define FAKE_CUDA_VERSION 12040
#endif
#ifndef FAKE_DRIVER_VERSION
#define FAKE_DRIVER_VERSION "550.54.15"
#endif

int cuDriverGetVersion(int *version)
{
	if (!version)
		return 1; /* CUDA_ERROR_INVALID_VALUE */
	*version = FAKE_CUDA_VERSION;
	return 0;
}

int cuInit(unsigned flags)
{
	return flags == 0 ? 0 : 1;
}

/* Like the real driver, count the GPU device nodes this process can see. */
int cuDeviceGetCount(int *count)
{
	DIR *d = opendir("/dev");
	struct dirent *e;
	int n = 0;

	if (!d || !count)
		return 1;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "nvidia", 6) == 0 && e->d_name[6] >= '0' && e->d_name[6] <= '9')
			n++;
	closedir(d);
	*count = n;
	return 0;
}

const char *berth_fake_driver_version(void)
{
	return FAKE_DRIVER_VERSION;
}
