/*
 * http.c — libmicrohttpd server: start/stop, the per-request state machine,
 * bounded upload accumulation, response helpers (CORS, Allow, Retry-After),
 * and the per-request log line and metrics at completion.
 *
 * State machine per request (req_t, created on MHD's first callback, freed in
 * the completion callback): RS_NEW -> (non-classify: answered at once) or
 * RS_UPLOAD (body chunks counted and stored) -> upload complete -> RS_QUEUED
 * (connection suspended, job in the pipeline) -> resumed by http_job_finished()
 * on the loop thread -> answered.
 * A Content-Length above the limit is refused (413) before any body is read;
 * such a socket lingers after the answer (linger.h) so the client reads it.
 * A body without one (chunked) that passes the limit cannot be answered at once:
 * libmicrohttpd 0.9.75 refuses MHD_queue_response() until the request is
 * complete (MHD_NO mid-body; MHD then calls the handler again and again at the
 * body's end until the connection times out, the client reading nothing:
 * tests/tools/mhd_midbody.c). So what is stored is freed, the rest is read
 * and dropped, and the 413 goes out with `Connection: close` when the body ends,
 * the socket lingering like the one above; a client still sending when the
 * lingering close's byte budget is also past is cut off (no answer can reach it).
 * Guards: every connection is registered (conns.h) so a request trickling in
 * is cut off at its deadline; MHD enforces the connection limits (total and per
 * address) and the header memory; on_request bounds header and query counts;
 * bodies are charged against server.upload_memory (503 past it).
 * Memory: the body buffer starts at the declared Content-Length when that is at
 * most 1 MiB (else 64 KiB) and grows by doubling, never beyond the body limit.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handlers.h"
#include "log.h"

/* The connection's registry entry (conns.h); NULL if it is not watched. */
static conn_entry_t *conn_entry(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static int origin_allowed(const char *list, const char *origin) {
  size_t olen = strlen(origin);
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    size_t n = (size_t)(t - p);
    if ((n == 1 && *p == '*') || (n == olen && n > 0 && strncmp(p, origin, n) == 0)) return 1;
    p = e;
  }
  return 0;
}

static void add_cors(req_t *r, struct MHD_Response *resp) {
  const char *list = r->app->cfg->cors_origins;
  if (!list || !*list) return;
  MHD_add_response_header(resp, "Vary", "Origin");
  const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
  if (origin && origin_allowed(list, origin))
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
}

enum MHD_Result http_send(req_t *r, int status, char *body, size_t len, const char *ctype,
                          const char *allow, int retry_after) {
  struct MHD_Response *resp =
      body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
           : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
  if (retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
  conn_entry_t *e = conn_entry(r->conn);
  if (atomic_load(&r->app->draining) || (e && e->over) || r->too_large)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  add_cors(r, resp);
  enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  r->status = status;
  r->bytes_out = body ? len : 0;
  r->state = RS_ANSWERED;
  return rc;
}

enum MHD_Result http_error(req_t *r, int status, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  jout_t j;
  jout_init(&j);
  jout_puts(&j, "{\"error\":{\"code\":");
  jout_str(&j, code);
  jout_puts(&j, ",\"message\":");
  jout_str(&j, msg);
  jout_puts(&j, "}}\n");
  size_t len;
  char *body = jout_take(&j, &len);
  r->err_code = code;
  const char *allow = status == 405 ? router_allow(r->route) : NULL;
  int retry = status != 503 ? 0 : r->retry_after > 0 ? r->retry_after : 1;
  return http_send(r, status, body, len, "application/json", allow, retry);
}

/* A request that declares a body: refused before reading it, its socket lingers. */
static int has_body(req_t *r) {
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  return (cl && strcmp(cl, "0") != 0) ||
         MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* Header and query floods: MHD bounds their bytes (header_limit); these bound counts. */
static int fields_ok(req_t *r) {
  const config_t *cfg = r->app->cfg;
  int nh = MHD_get_connection_values(r->conn, MHD_HEADER_KIND, NULL, NULL);
  if (nh > cfg->max_headers) {
    http_error(r, 431, "headers_too_large", "%d header lines; at most %d are accepted", nh,
               cfg->max_headers);
    return 0;
  }
  int nq = MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, NULL, NULL);
  if (nq > cfg->max_query_args) {
    http_error(r, 414, "uri_too_long", "%d query parameters; at most %d are accepted", nq,
               cfg->max_query_args);
    return 0;
  }
  return 1;
}

/* Everything but a classify upload is answered on MHD's second call, once the
 * request is complete: answering on the first call would make MHD close the
 * connection (no keep-alive). A classify request may be refused on the first
 * call (bad parameters, Content-Length over the limit) precisely so that its
 * body is never read; so are requests over the connection limit or the header
 * and query counts. */
static enum MHD_Result req_begin(req_t *r, const char *url, const char *method) {
  conn_entry_t *e = conn_entry(r->conn);
  if (e && e->over) {
    atomic_fetch_add(&r->app->conns_refused, 1);
    return http_error(r, 503, "too_many_connections",
                      "more than %d connections are open; retry later",
                      r->app->max_connections);
  }
  if (!fields_ok(r)) return MHD_YES;
  router_match(r, url, r->model_name, sizeof(r->model_name));
  if (r->route == ROUTE_CLASSIFY && strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
    enum MHD_Result rc = handlers_classify_begin(r, r->model_name);
    if (r->state == RS_NEW) r->state = RS_UPLOAD;
    return rc;
  }
  r->state = RS_DEFERRED;
  return MHD_YES;
}

static enum MHD_Result req_answer_deferred(req_t *r) {
  if (r->route == ROUTE_NONE) return http_error(r, 404, "not_found", "no such path");
  if (strcmp(r->method, MHD_HTTP_METHOD_OPTIONS) == 0) return handlers_options(r);
  if (!router_method_ok(r->route, r->method))
    return http_error(r, 405, "method_not_allowed", "%s is not allowed here", r->method);
  return handlers_get(r);
}

static int body_append(req_t *r, const char *data, size_t size) {
  size_t limit = r->app->cfg->body_limit;
  if (r->body_len + size > r->body_cap) {
    /* A declared length (up to 1 MiB: a claim is not data) sizes the buffer at
     * once, sparing the reallocs and copies; beyond it, or without one, double. */
    size_t first = r->content_length > 0 && r->content_length <= (1u << 20) ? r->content_length
                                                                            : 65536;
    size_t cap = r->body_cap ? r->body_cap : first;
    while (cap < r->body_len + size) cap *= 2;
    if (cap > limit) cap = limit;
    uint8_t *nb = realloc(r->body, cap);
    if (!nb) return -1;
    r->body = nb;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, size);
  r->body_len += size;
  return 0;
}

int http_upload_charge(req_t *r, uint64_t total) {
  if (total <= r->charged) return 0;
  long add = (long)(total - r->charged);
  long budget = (long)r->app->cfg->upload_memory;
  if (atomic_fetch_add(&r->app->upload_bytes, add) + add > budget) {
    atomic_fetch_sub(&r->app->upload_bytes, add);
    atomic_fetch_add(&r->app->upload_refused, 1);
    return -1;
  }
  r->charged = total;
  return 0;
}

/* The body has passed the limit (see the note at the top): the first time, what
 * is stored and charged is released; then bytes are only counted. MHD_NO (cut
 * off) once the lingering close's byte budget is past the limit as well. */
static enum MHD_Result over_limit(req_t *r) {
  if (!r->too_large) {
    r->too_large = 1;
    r->status = 413;
    r->err_code = "payload_too_large";
    multipart_deinit(&r->mp);
    r->is_multipart = 0;
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    if (r->charged) atomic_fetch_sub(&r->app->upload_bytes, (long)r->charged);
    r->charged = 0;
  }
  return r->bytes_in - r->app->cfg->body_limit > r->app->linger->max_bytes ? MHD_NO : MHD_YES;
}

/* The body ended past the limit: 413, the connection closed, the socket lingering. */
static enum MHD_Result answer_too_large(req_t *r) {
  r->linger = 1;
  return http_error(r, 413, "payload_too_large", "the body exceeds the limit of %zu bytes",
                    r->app->cfg->body_limit);
}

static enum MHD_Result req_consume(req_t *r, const char *data, size_t size) {
  r->bytes_in += size;
  if (r->bytes_in > r->app->cfg->body_limit) return over_limit(r);
  if (r->err_code) return MHD_YES; /* already failed: discard up to the limit */
  if (http_upload_charge(r, r->bytes_in) < 0) {
    r->err_code = "server_busy"; /* answered 503 once the body is in (and discarded) */
    return MHD_YES;
  }
  int rc = r->is_multipart ? multipart_feed(&r->mp, data, size) : body_append(r, data, size);
  if (rc < 0) r->err_code = r->mp.oom ? "out_of_memory" : "invalid_multipart";
  return MHD_YES;
}

static enum MHD_Result req_step(req_t *r, const char *upload, size_t *upload_size) {
  if (r->state == RS_QUEUED) return handlers_classify_answer(r);
  if (r->state == RS_DEFERRED) { /* discard any body; past the limit as an upload */
    r->bytes_in += *upload_size;
    conns_progress(conn_entry(r->conn), *upload_size);
    if (r->bytes_in > r->app->cfg->body_limit && over_limit(r) == MHD_NO) return MHD_NO;
    if (*upload_size == 0) return r->too_large ? answer_too_large(r) : req_answer_deferred(r);
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->state == RS_ANSWERED) {
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size) {
    conns_progress(conn_entry(r->conn), *upload_size);
    enum MHD_Result rc = req_consume(r, upload, *upload_size);
    *upload_size = 0;
    return rc;
  }
  return r->too_large ? answer_too_large(r) : handlers_classify_submit(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  req_t *r = *con_cls;
  enum MHD_Result rc;
  if (r) {
    rc = req_step(r, upload, upload_size);
  } else {
    app_t *app = cls;
    r = calloc(1, sizeof(*r));
    if (!r) return MHD_NO;
    r->app = app;
    r->conn = c;
    r->t_start = job_now_ns();
    r->ep = EP_OTHER;
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->path, sizeof(r->path), "%s", url);
    atomic_fetch_add(&app->in_flight, 1);
    atomic_fetch_add(&app->started, 1);
    *con_cls = r;
    rc = req_begin(r, url, method);
    if (r->state == RS_ANSWERED && has_body(r)) r->linger = 1;
  }
  /* The whole request is in: no arrival deadline until it is answered. */
  if (r->state == RS_QUEUED || r->state == RS_ANSWERED) conns_exempt(conn_entry(c));
  return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  req_t *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  double secs = (double)(job_now_ns() - r->t_start) / 1e9;
  int status = r->state == RS_ANSWERED ? r->status : (r->status ? r->status : 0);
  /* Resumed, then closed before answering (the client had gone): log the job's outcome. */
  if (r->state == RS_QUEUED && r->job.status) {
    status = r->job.status;
    if (!r->err_code) r->err_code = r->job.err_code;
  }
  /* A body cut off past the limit counts as the 413 it would have got. */
  metrics_request(r->ep, r->state == RS_ANSWERED ? status : r->too_large ? 413 : 0);
  metrics_observe(H_REQUEST, secs);
  log_request(&(log_request_t){.method = r->method,
                               .path = r->path,
                               .model = r->model ? r->model->conf->name : NULL,
                               .status = status,
                               .bytes_in = r->bytes_in,
                               .bytes_out = r->bytes_out,
                               .duration_ms = secs * 1e3,
                               .error = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK
                                            ? r->err_code
                                            : (r->err_code ? r->err_code : "connection_closed")});
  if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
    conns_answered(conn_entry(c)); /* the next request on this connection: a new clock */
    const union MHD_ConnectionInfo *ci =
        r->linger ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
    if (ci) (void)linger_add(r->app->linger, ci->connect_fd);
  }
  multipart_deinit(&r->mp);
  free(r->body);
  if (r->charged) atomic_fetch_sub(&r->app->upload_bytes, (long)r->charged);
  modelset_unref(r->gen);
  atomic_fetch_sub(&r->app->in_flight, 1);
  free(r);
}

void http_job_finished(job_t *j) {
  req_t *r = (req_t *)((char *)j - offsetof(req_t, job));
  MHD_resume_connection(r->conn);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  app_t *app = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = ci ? conns_open(app->conns, ci->connect_fd) : NULL;
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    conns_close(app->conns, *socket_context); /* before MHD closes the fd */
    *socket_context = NULL;
  }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  log_msg(LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* "HOST:PORT" or "[V6]:PORT" -> socket address. */
static int resolve(const char *listen, struct sockaddr_storage *ss, int *v6) {
  char host[256];
  const char *colon = strrchr(listen, ':');
  size_t hl = (size_t)(colon - listen);
  if (hl >= sizeof(host)) return -1;
  memcpy(host, listen, hl);
  host[hl] = '\0';
  char *h = host;
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') h = host + 1, host[hl - 1] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
  if (rc != 0 || !res) {
    log_msg(LOG_ERROR, "server.listen: cannot resolve '%s': %s", listen, gai_strerror(rc));
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *v6 = res->ai_family == AF_INET6;
  freeaddrinfo(res);
  return 0;
}

static int socket_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

struct MHD_Daemon *http_start(app_t *app, int listen_fd, int *port_out) {
  const config_t *cfg = app->cfg;
  struct sockaddr_storage ss;
  int v6 = 0;
  if (listen_fd < 0 && resolve(cfg->listen, &ss, &v6) < 0) return NULL;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
  /* The listening socket (passed by systemd, or bound by MHD) and, with more than one
   * thread, the pool size: MHD warns about a pool of size 1. */
  struct MHD_OptionItem opts[4];
  int no = 0;
  opts[no++] = listen_fd >= 0 ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL}
                              : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
  if (cfg->http_threads > 1)
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->http_threads, NULL};
  if (cfg->max_connections_per_ip > 0)
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                         (intptr_t)cfg->max_connections_per_ip, NULL};
  opts[no] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, app,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)app->accept_limit,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->header_limit,
      MHD_OPTION_STRICT_FOR_CLIENT, 1, /* e.g. HTTP/1.1 without Host: 400 */
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
  if (!d) {
    log_msg(LOG_ERROR, "cannot listen on %s (address in use or not available?)",
            listen_fd >= 0 ? "the socket-activated fd" : cfg->listen);
    return NULL;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  *port_out = listen_fd >= 0 ? socket_port(listen_fd) : info ? info->port : -1;
  return d;
}

void http_quiesce(struct MHD_Daemon *d) {
  MHD_socket fd = MHD_quiesce_daemon(d);
  if (fd != MHD_INVALID_SOCKET) close(fd);
}

void http_stop(struct MHD_Daemon *d) {
  if (d) MHD_stop_daemon(d);
}
