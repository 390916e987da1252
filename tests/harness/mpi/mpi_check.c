/* The MPI test program of berth's MPI tests (tests/integration/mpi*.bats).
 *
 *   mpi_check [BYTES]
 *
 * Every rank prints one line
 *   rank R size S host H userns INODE allreduce SUM ring ok big ok
 * and exits 0 only when all checks pass:
 *   - MPI_Allreduce of rank+1 over all ranks gives S*(S+1)/2;
 *   - a token goes once round the ring (each rank adds 1): rank 0 gets S;
 *   - a message of BYTES (default 4 MiB, above every shared-memory eager
 *     limit, so Open MPI's vader BTL takes its single-copy path: CMA when
 *     btl_vader_single_copy_mechanism=cma) goes to the right neighbour and
 *     its content is checked byte for byte.
 * A failed check prints "rank R: FAIL ..." and aborts the job. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fail(int rank, const char *what)
{
	fprintf(stderr, "rank %d: FAIL %s\n", rank, what);
	fflush(stderr);
	MPI_Abort(MPI_COMM_WORLD, 1);
}

static unsigned char pattern(int from, size_t i)
{
	return (unsigned char)((i * 131u + (unsigned)from * 7u) & 0xff);
}

static void big_message(int rank, int size, size_t bytes)
{
	int right = (rank + 1) % size, left = (rank + size - 1) % size;
	unsigned char *out = malloc(bytes), *in = malloc(bytes);

	if (!out || !in || bytes > INT_MAX)
		fail(rank, "message buffer");
	for (size_t i = 0; i < bytes; i++)
		out[i] = pattern(rank, i);
	memset(in, 0, bytes);
	MPI_Sendrecv(out, (int)bytes, MPI_BYTE, right, 2, in, (int)bytes, MPI_BYTE, left, 2,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	for (size_t i = 0; i < bytes; i++)
		if (in[i] != pattern(left, i))
			fail(rank, "large message content");
	free(out);
	free(in);
}

int main(int argc, char **argv)
{
	char host[MPI_MAX_PROCESSOR_NAME], ns[64] = "?";
	int rank, size, len, token;
	long mine, sum = 0;
	size_t bytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 4u << 20;
	ssize_t n;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Get_processor_name(host, &len);
	n = readlink("/proc/self/ns/user", ns, sizeof(ns) - 1);
	ns[n > 0 ? n : 1] = '\0';

	mine = rank + 1;
	MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	if (sum != (long)size * (size + 1) / 2)
		fail(rank, "allreduce");

	if (size > 1) {
		if (rank == 0) {
			token = 1;
			MPI_Send(&token, 1, MPI_INT, 1, 1, MPI_COMM_WORLD);
			MPI_Recv(&token, 1, MPI_INT, size - 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			if (token != size)
				fail(rank, "ring token");
		} else {
			MPI_Recv(&token, 1, MPI_INT, rank - 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			token++;
			MPI_Send(&token, 1, MPI_INT, (rank + 1) % size, 1, MPI_COMM_WORLD);
		}
	}
	MPI_Bcast(&token, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (size > 1 && token != size)
		fail(rank, "ring token broadcast");
	big_message(rank, size, bytes);

	printf("rank %d size %d host %s userns %s allreduce %ld ring ok big ok\n", rank, size,
	       host, ns, sum);
	fflush(stdout);
	MPI_Finalize();
	return 0;
}
