/* berth's MPI microbenchmark (OSU-style), for bench/mpi.sh.
 *
 *   mpi_bench [ITER_SCALE]
 *
 * Needs 2 or more ranks.  Three tests, each after warm-up iterations:
 *   latency    ping-pong between ranks 0 and 1: half the round trip, in us
 *   bandwidth  rank 0 streams a window of 64 non-blocking sends to rank 1,
 *              which answers one byte per window: MB/s (10^6 bytes)
 *   allreduce  MPI_Allreduce of SIZE bytes of floats over all ranks: the
 *              mean time per call, in us, the maximum over ranks
 * Rank 0 prints one line per test and size:
 *   latency 8 0.31
 *   bandwidth 1048576 9876.5
 *   allreduce 1024 0.97
 * ITER_SCALE (default 1.0) multiplies every iteration count. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZE (4 << 20)
#define WINDOW 64

static double scale = 1.0;

static int iters(int size, int small, int large)
{
	int n = size > 65536 ? large : small;

	n = (int)(n * scale);
	return n < 2 ? 2 : n;
}

static void latency(int rank, char *buf)
{
	for (int size = 0; size <= MAX_SIZE; size = size ? size * 4 : 1) {
		int n = iters(size, 20000, 1000), warm = n / 10;
		double t0 = 0;

		MPI_Barrier(MPI_COMM_WORLD);
		for (int i = 0; i < n + warm; i++) {
			if (i == warm)
				t0 = MPI_Wtime();
			if (rank == 0) {
				MPI_Send(buf, size, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
				MPI_Recv(buf, size, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			} else if (rank == 1) {
				MPI_Recv(buf, size, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				MPI_Send(buf, size, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
			}
		}
		if (rank == 0)
			printf("latency %d %.3f\n", size, (MPI_Wtime() - t0) * 1e6 / (2.0 * n));
	}
}

static void bandwidth(int rank, char *buf, char *ack)
{
	MPI_Request req[WINDOW];

	for (int size = 1024; size <= MAX_SIZE; size *= 4) {
		int n = iters(size, 400, 40), warm = n / 10 + 1;
		double t0 = 0;

		MPI_Barrier(MPI_COMM_WORLD);
		for (int i = 0; i < n + warm; i++) {
			if (i == warm)
				t0 = MPI_Wtime();
			if (rank == 0) {
				for (int w = 0; w < WINDOW; w++)
					MPI_Isend(buf, size, MPI_CHAR, 1, 2, MPI_COMM_WORLD, &req[w]);
				MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
				MPI_Recv(ack, 1, MPI_CHAR, 1, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			} else if (rank == 1) {
				for (int w = 0; w < WINDOW; w++)
					MPI_Irecv(buf, size, MPI_CHAR, 0, 2, MPI_COMM_WORLD, &req[w]);
				MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
				MPI_Send(ack, 1, MPI_CHAR, 0, 3, MPI_COMM_WORLD);
			}
		}
		if (rank == 0)
			printf("bandwidth %d %.1f\n", size,
			       (double)size * WINDOW * n / (MPI_Wtime() - t0) / 1e6);
	}
}

static void allreduce(int rank, float *in, float *out)
{
	for (int size = 4; size <= MAX_SIZE / 4; size *= 4) {
		int n = iters(size, 10000, 200), warm = n / 10, count = size / 4;
		double t0 = 0, mine, worst;

		MPI_Barrier(MPI_COMM_WORLD);
		for (int i = 0; i < n + warm; i++) {
			if (i == warm)
				t0 = MPI_Wtime();
			MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
		}
		mine = (MPI_Wtime() - t0) * 1e6 / n;
		MPI_Reduce(&mine, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
		if (rank == 0)
			printf("allreduce %d %.3f\n", size, worst);
	}
}

int main(int argc, char **argv)
{
	int rank, size;
	char *buf, ack[1] = {0};
	float *in, *out;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc > 1)
		scale = strtod(argv[1], NULL);
	if (size < 2 || !(scale > 0)) {
		if (rank == 0)
			fprintf(stderr, "mpi_bench: needs 2 or more ranks and a positive scale\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	buf = malloc(MAX_SIZE);
	in = malloc(MAX_SIZE);
	out = malloc(MAX_SIZE);
	if (!buf || !in || !out)
		MPI_Abort(MPI_COMM_WORLD, 1);
	memset(buf, 'x', MAX_SIZE);
	for (int i = 0; i < MAX_SIZE / 4; i++)
		in[i] = (float)(i % 97);
	latency(rank, buf);
	bandwidth(rank, buf, ack);
	allreduce(rank, in, out);
	fflush(stdout);
	free(buf);
	free(in);
	free(out);
	MPI_Finalize();
	return 0;
}
