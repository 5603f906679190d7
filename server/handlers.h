/*
 * handlers.h — routing and the endpoint handlers (GET endpoints, CORS preflight,
 * classify parameter checks and answers). Called from http.c on MHD threads.
 * Every handler queues exactly one response (through http_send/http_error)
 * unless documented otherwise.
 */
#ifndef CLASSIFYD_HANDLERS_H
#define CLASSIFYD_HANDLERS_H

#include "http.h"

/* Sets r->route and r->ep from the path; for /models/NAME/classify also the
 * model name (into name, at most namelen-1 bytes; "" when absent). */
void router_match(req_t *r, const char *url, char *name, size_t namelen);
const char *router_allow(route_t route);
int router_method_ok(route_t route, const char *method);

enum MHD_Result handlers_get(req_t *r);
enum MHD_Result handlers_options(req_t *r);
/* Checks model, top_k, readiness and Content-Length; returns with no response
 * queued (r->state still RS_NEW) when the upload may proceed. */
enum MHD_Result handlers_classify_begin(req_t *r, const char *path_model);
/* Upload complete: validate, admit and suspend (no response yet) or answer an error. */
enum MHD_Result handlers_classify_submit(req_t *r);
/* The job is finished: answer it. */
enum MHD_Result handlers_classify_answer(req_t *r);

#endif
