/*
 * blas.c — the engine's one touch point with OpenBLAS's own threading.
 *
 * The engine parallelizes every kernel itself through pool_run and each of its
 * threads calls cblas_sgemm on its own slice, so OpenBLAS must stay
 * single-threaded: two thread pools on two cores would only fight.
 */
#include <cblas.h>

#include "cnn.h"

void cnn_blas_single_thread(void) { openblas_set_num_threads(1); }
