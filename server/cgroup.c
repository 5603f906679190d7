/*
 * cgroup.c — this process's cgroup and its ancestors (see cgroup.h).
 *
 * /proc/self/cgroup has one line per hierarchy: "0::/path" for v2 and
 * "N:ctrl[,ctrl...]:/path" for v1 (a named hierarchy such as name=systemd never
 * matches a controller). Paths longer than the buffers, or containing "..", are
 * ignored (only the mount root is read then): the file comes from the kernel, but
 * nothing read from disk is trusted to stay inside the mount.
 */
#include "cgroup.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum { CGROUP_PATH_MAX = 1024 };

/* 1 when the comma-separated list has the controller. */
static int has_controller(const char *list, size_t len, const char *want) {
  size_t n = strlen(want);
  for (const char *p = list, *end = list + len; p < end;) {
    const char *c = memchr(p, ',', (size_t)(end - p));
    size_t l = c ? (size_t)(c - p) : (size_t)(end - p);
    if (l == n && memcmp(p, want, n) == 0) return 1;
    p += l + 1;
  }
  return 0;
}

/* The cgroup path of the hierarchy into out ("" when unknown). */
static void self_path(const char *self, const char *controller, char *out, size_t cap) {
  out[0] = '\0';
  FILE *f = self ? fopen(self, "r") : NULL;
  if (!f) return;
  char line[CGROUP_PATH_MAX + 256];
  while (fgets(line, sizeof line, f)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b) continue;
    int match = controller ? has_controller(a + 1, (size_t)(b - a - 1), controller)
                           : strncmp(line, "0::", 3) == 0;
    if (!match) continue;
    char *path = b + 1;
    path[strcspn(path, "\n")] = '\0';
    if (path[0] == '/' && strlen(path) < cap && !strstr(path, "..")) snprintf(out, cap, "%s", path);
    break;
  }
  fclose(f);
}

void cgroup_walk(const char *root, const char *self, const char *controller,
                 void (*visit)(const char *dir, void *arg), void *arg) {
  char rel[CGROUP_PATH_MAX], dir[CGROUP_PATH_MAX + 512];
  self_path(self, controller, rel, sizeof rel);
  size_t len = strlen(rel);
  while (len > 0 && rel[len - 1] == '/') rel[--len] = '\0';
  for (;;) {
    int n = controller ? snprintf(dir, sizeof dir, "%s/%s%s", root, controller, rel)
                       : snprintf(dir, sizeof dir, "%s%s", root, rel);
    struct stat st;
    if (n > 0 && (size_t)n < sizeof dir && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
      visit(dir, arg);
    if (len == 0) return;
    char *slash = strrchr(rel, '/');
    len = slash ? (size_t)(slash - rel) : 0;
    rel[len] = '\0';
  }
}
