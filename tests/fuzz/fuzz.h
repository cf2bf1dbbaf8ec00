/* fuzz.h — the libFuzzer entry point shared by the fuzz targets and by
 * replay_main.c, which runs committed inputs through them in the normal
 * (gcc, ASan+UBSan) test suite.
 *
 * Every target is one file fuzz_<name>.c defining LLVMFuzzerTestOneInput().
 * A target returns 0 for every input; a bug shows as a sanitizer report or
 * as fuzz_fail(), which prints what broke and aborts (libFuzzer then saves
 * the input as a crash).
 */
#ifndef LW_FUZZ_H
#define LW_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print "fuzz: <message>" to stderr and abort(). Never returns. */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
