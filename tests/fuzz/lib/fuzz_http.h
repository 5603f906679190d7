/*
 * fuzz_http.h — the daemon's whole request path, in-process, for the HTTP fuzzers.
 *
 * fuzz_http_start() builds what daemon.c builds (configuration from flags, one model
 * generation with its runners, the decode pipeline on a libuv loop thread, the
 * libmicrohttpd server of http.c) but serves an abstract AF_UNIX socket instead of a
 * TCP port (http_start's socket-activation path), so no network and no port is used.
 * fuzz_http_exchange() sends raw request bytes on a fresh connection, half-closes it
 * and reads the answer until the server closes, bounded in time. Everything the
 * request touches is the production code: MHD's parser, http.c, handlers.c,
 * multipart.c, the pipeline, the image decoders, the engine and json_out.c.
 *
 * The server lives until the process exits (libFuzzer never returns).
 */
#ifndef FUZZ_HTTP_H
#define FUZZ_HTTP_H

#include <stddef.h>

typedef struct fuzz_http fuzz_http_t;

/* Starts once per process; extra flags (e.g. "--cors-origins", "*") are appended to the
 * harness's own. Aborts with a message when it cannot start (the fuzzer is useless then). */
fuzz_http_t *fuzz_http_start(const char *const *extra, int nextra);

/* One request: returns the number of answer bytes received, 0 when the server closed
 * without answering; at most cap - 1 of them are stored in resp (NUL-terminated).
 * half_close: 1 shuts our sending side once everything is sent (raw bytes: the server
 * learns there is no more; a classify still queued is then dropped as 499
 * client_closed); 0 keeps it open (for requests with "Connection: close", which the
 * server answers in full and then closes). Aborts when the server neither answers nor
 * closes within FUZZ_HTTP_TIMEOUT_MS (a hang is a finding). */
size_t fuzz_http_exchange(fuzz_http_t *h, const void *req, size_t len, char *resp, size_t cap,
                          int half_close);

/* Status code of an HTTP/1.x answer, or -1 when resp is not one. */
int fuzz_http_status(const char *resp, size_t len);

/* The answer's body (after the blank line), or NULL. */
const char *fuzz_http_body(const char *resp, size_t len);

/* Checks an answer against what the daemon promises and aborts (a finding) when it
 * breaks a promise: a status line with a known status; for a JSON body, valid JSON; an
 * error answer has {"error":{"code","message"}}; a classify answer has 1..max_k
 * predictions with indices < 5, labels, probabilities in [0,1] sorted descending and a
 * known model name. 500 answers are findings unless they say out_of_memory. `received`
 * is what fuzz_http_exchange returned for a buffer of `cap` bytes: when more arrived
 * than fit, the last, cut answer is not checked. */
void fuzz_http_check(const char *resp, size_t received, size_t cap, int max_k);

#define FUZZ_HTTP_TIMEOUT_MS 10000

#endif
