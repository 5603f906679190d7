/*
 * test_modelset.c — model generations for reload: reference counting, the
 * current-generation slot under concurrent readers and swaps (run under ASan in
 * make unit-asan: a premature free or a leak fails), and which settings a reload
 * may change (config_keep_startup).
 *
 * Like test_server.c, the sources under test are included; the shared modules
 * (config, log, metrics, queue) come from test_server.c's translation unit.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "../../server/modelset.c"
#include "../../server/models.c"
/* runner.c is compiled into this binary by test_server.c */

static modelset_t *set_with(const char *name, unsigned long id) {
  config_t c;
  memset(&c, 0, sizeof(c));
  c.n_models = 1;
  snprintf(c.models[0].name, sizeof(c.models[0].name), "%s", name);
  c.models[0].path = strdup("/nonexistent.onnx");
  c.listen = strdup("127.0.0.1:0");
  c.cors_origins = strdup("");
  modelset_t *s = modelset_create(&c, id);
  cr_assert_not_null(s);
  return s;
}

Test(modelset, references_keep_a_swapped_out_generation_alive) {
  modelset_slot_t slot;
  cr_assert_eq(modelset_slot_init(&slot, set_with("a", 1)), 0);
  modelset_t *req = modelset_slot_get(&slot); /* a request admitted on generation 1 */
  cr_assert_eq(atomic_load(&req->refs), 2);
  modelset_t *old = modelset_slot_swap(&slot, set_with("b", 2));
  cr_assert_eq(old, req);
  modelset_unref(old); /* the slot's reference: the request still holds one */
  cr_assert_eq(atomic_load(&req->refs), 1);
  cr_assert_str_eq(req->reg.m[0].conf->name, "a"); /* still readable */
  modelset_t *next = modelset_slot_get(&slot);
  cr_assert_eq(next->id, 2);
  cr_assert_str_eq(registry_find(&next->reg, "b", 1)->conf->name, "b");
  cr_assert_null(registry_find(&next->reg, "a", 1));
  modelset_unref(next);
  modelset_unref(req); /* last reference: generation 1 is freed here */
  modelset_slot_deinit(&slot);
}

typedef struct {
  modelset_slot_t *slot;
  atomic_int *stop;
  long seen;
} reader_t;

static void *reader(void *arg) {
  reader_t *r = arg;
  while (!atomic_load(r->stop)) {
    modelset_t *s = modelset_slot_get(r->slot);
    cr_assert(atomic_load(&s->refs) >= 1);
    cr_assert_eq(s->reg.n, 1);
    r->seen += (long)s->id;
    modelset_unref(s);
  }
  return NULL;
}

Test(modelset, concurrent_readers_and_swaps) {
  modelset_slot_t slot;
  atomic_int stop = 0;
  cr_assert_eq(modelset_slot_init(&slot, set_with("m", 1)), 0);
  pthread_t t[4];
  reader_t r[4];
  for (int i = 0; i < 4; i++) {
    r[i] = (reader_t){&slot, &stop, 0};
    pthread_create(&t[i], NULL, reader, &r[i]);
  }
  for (unsigned long g = 2; g <= 300; g++) modelset_unref(modelset_slot_swap(&slot, set_with("m", g)));
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  cr_assert_eq(slot.cur->id, 300);
  cr_assert_eq(atomic_load(&slot.cur->refs), 1);
  modelset_slot_deinit(&slot);
}

Test(modelset, reload_keeps_startup_only_settings) {
  config_t run, next;
  char *a1[] = {"classifyd", "--model", "a=/dev/null", "--threads", "2", NULL};
  char *a2[] = {"classifyd", "--model", "b=/dev/null", "--threads", "3", "--listen",
                "0.0.0.0:9", "--body-limit", "1K", "--max-batch", "4", NULL};
  cr_assert_eq(config_load(&run, 5, a1), 0);
  cr_assert_eq(config_load(&next, 11, a2), 0);
  char changed[256];
  cr_assert_eq(config_keep_startup(&next, &run, changed, sizeof(changed)), 0);
  cr_assert_str_eq(changed, "server.listen, server.body_limit");
  cr_assert_str_eq(next.listen, run.listen);
  cr_assert_eq(next.body_limit, run.body_limit);
  cr_assert_eq(next.threads, 3);
  cr_assert_eq(next.max_batch, 4);
  cr_assert_str_eq(next.models[0].name, "b");
  config_t copy;
  cr_assert_eq(config_copy(&copy, &next), 0);
  cr_assert_str_eq(copy.models[0].path, "/dev/null");
  cr_assert_neq(copy.models[0].path, next.models[0].path);
  config_free(&copy);
  config_free(&next);
  config_free(&run);
}
