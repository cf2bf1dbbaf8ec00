/* fuzz_file_sd.c — libFuzzer target for file_sd target files (Prometheus
 * format, JSON or YAML: a list of {targets: [...], labels: {...}}), parsed
 * by lw_file_sd_parse() exactly as collector/file_sd.c does after reading a
 * file. The scheme that picks default ports alternates with the input's
 * length, so both defaults are exercised. Parsed groups must hold non-NULL,
 * non-empty targets and valid label names.
 *
 * The input is copied into a buffer of exactly its size (no terminating
 * NUL), so a parser that reads past `len` is caught by ASan.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *scheme = (size & 1) ? "https" : "http";
    lw_target_group *groups = NULL;
    size_t n = 0;
    struct lw_arena *arena = NULL;
    char err[LW_CONFIG_ERR_LEN] = "";

    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    int rc = lw_file_sd_parse("fuzz.json", buf, size, scheme, &groups, &n, &arena, err,
                              sizeof(err));
    if (rc) {
        if (arena || groups || n)
            fuzz_fail("lw_file_sd_parse failed (%d) but returned data", rc);
        if (err[0] == '\0')
            fuzz_fail("lw_file_sd_parse failed (%d) without a message", rc);
        goto out;
    }
    if (!arena || !groups)
        fuzz_fail("lw_file_sd_parse succeeded without an arena or groups");
    for (size_t i = 0; i < n; i++) {
        for (size_t t = 0; t < groups[i].n_targets; t++)
            if (!groups[i].targets[t] || groups[i].targets[t][0] == '\0')
                fuzz_fail("group %zu: target %zu is NULL or empty", i, t);
        for (size_t l = 0; l < groups[i].n_labels; l++)
            if (!groups[i].labels[l].name || !groups[i].labels[l].value ||
                !lw_label_name_valid(groups[i].labels[l].name))
                fuzz_fail("group %zu: label %zu is NULL or has an invalid name", i, l);
    }
    lw_arena_free(arena);
out:
    free(buf);
    return 0;
}
