/* test_error.c — the error table: codes, names and messages stay consistent. */
#include <criterion/criterion.h>
#include <string.h>

#include "error.h"

Test(error, names_are_stable) {
  cr_assert_str_eq(cnn_err_code(CNN_OK), "ok");
  cr_assert_str_eq(cnn_err_code(CNN_EIMAGE_INVALID), "invalid_image");
  cr_assert_str_eq(cnn_err_code(CNN_EIMAGE_TOO_LARGE), "image_too_large");
  cr_assert_str_eq(cnn_err_code(CNN_EMEDIA_UNSUPPORTED), "unsupported_media_type");
  cr_assert_str_eq(cnn_err_code(CNN_EMODEL_UNSUPPORTED), "unsupported_model");
  cr_assert(CNN_ENOMEM < 0 && CNN_EINTERNAL < CNN_ENOMEM);
}

Test(error, unknown_codes_map_to_internal) {
  cr_assert_str_eq(cnn_err_code(12345), "internal_error");
  cr_assert_str_eq(cnn_err_code(-9999), "internal_error");
}

Test(error, set_formats_and_returns_code) {
  cnn_error_t e;
  int rc = cnn_error_set(&e, CNN_EMODEL_INVALID, "node %s (%s): bad", "conv1", "Conv");
  cr_assert_eq(rc, CNN_EMODEL_INVALID);
  cr_assert_eq(e.code, CNN_EMODEL_INVALID);
  cr_assert_str_eq(e.msg, "node conv1 (Conv): bad");
  cr_assert_eq(cnn_error_set(NULL, CNN_EIO, "x"), CNN_EIO);
  cnn_error_clear(&e);
  cr_assert_eq(e.code, 0);
  cr_assert_str_eq(e.msg, "");
}
