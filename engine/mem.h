/*
 * mem.h — allocation of the engine's large, long-lived buffers (internal).
 */
#ifndef CNN_MEM_H
#define CNN_MEM_H

#include <stddef.h>

/* 64-byte aligned memory for weights and activations, freed with free(). Its
 * 2 MiB-aligned interior is advised for transparent huge pages; NULL when out of memory. */
void *cnn_mem_alloc(size_t bytes);

#endif
