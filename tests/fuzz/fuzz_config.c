/* fuzz_config.c — libFuzzer target for leakwatchd's YAML configuration
 * loader (collector/config.h): the input is the file's text, parsed from
 * memory once without flags and once with command-line overrides (--target,
 * --scrape.*, --detection.*, --alertmanager.url). A loaded config must be
 * self-consistent: every job is found by name, every profile by its name,
 * timeouts do not exceed intervals. The input's first line also goes
 * through the duration and byte-size parsers, and a parsed duration must
 * format and parse back to itself.
 *
 * The input is copied into a buffer of exactly its size (no terminating
 * NUL), so a parser that reads past `len` is caught by ASan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define FUZZ_LINE_MAX 64

static void check_config(const lw_config *c)
{
    for (size_t i = 0; i < c->n_scrape_configs; i++) {
        const lw_scrape_config *sc = &c->scrape_configs[i];
        if (!sc->job_name || lw_config_job(c, sc->job_name) == NULL)
            fuzz_fail("job %zu cannot be looked up by its name", i);
        if (sc->scrape_timeout_ns > sc->scrape_interval_ns)
            fuzz_fail("job %s: timeout %lld ns > interval %lld ns", sc->job_name,
                      (long long)sc->scrape_timeout_ns, (long long)sc->scrape_interval_ns);
        for (size_t j = 0; j < sc->n_profiles; j++) {
            const lw_profile_config *pc = &sc->profiles[j];
            if (!pc->name || !pc->path || lw_config_profile(sc, pc->name) == NULL)
                fuzz_fail("job %s: profile %zu cannot be looked up by its name", sc->job_name, j);
        }
        for (size_t g = 0; g < sc->n_static_configs; g++)
            for (size_t t = 0; t < sc->static_configs[g].n_targets; t++)
                if (!sc->static_configs[g].targets[t])
                    fuzz_fail("job %s: NULL target", sc->job_name);
    }
}

static void parse_once(const char *buf, size_t size, const lw_flags *flags)
{
    lw_config *c = NULL;
    char err[LW_CONFIG_ERR_LEN] = "";
    int rc = lw_config_parse("fuzz.yml", buf, size, flags, &c, err, sizeof(err));
    if (rc) {
        if (c)
            fuzz_fail("lw_config_parse failed (%d) but set *out", rc);
        if (err[0] == '\0')
            fuzz_fail("lw_config_parse failed (%d) without a message", rc);
        return;
    }
    if (!c)
        fuzz_fail("lw_config_parse succeeded without a config");
    check_config(c);
    lw_config_free(c);
}

static void check_first_line(const uint8_t *data, size_t size)
{
    char line[FUZZ_LINE_MAX];
    size_t n = 0;
    while (n < size && n < sizeof(line) - 1 && data[n] != '\n' && data[n] != '\0') {
        line[n] = (char)data[n];
        n++;
    }
    line[n] = '\0';

    int64_t ns = 0, again = 0, bytes = 0;
    if (lw_parse_duration(line, &ns) == 0) {
        char text[FUZZ_LINE_MAX];
        lw_format_duration(ns, text, sizeof(text));
        if (lw_parse_duration(text, &again) != 0 || again != ns)
            fuzz_fail("duration \"%s\" = %lld ns formats as \"%s\", which does not parse back",
                      line, (long long)ns, text);
    }
    if (lw_parse_size(line, &bytes) == 0 && bytes < 0)
        fuzz_fail("size \"%s\" parsed as negative %lld", line, (long long)bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *argv[] = {
        "leakwatchd",           "--target=http://127.0.0.1:1/", "--scrape.interval=2s",
        "--scrape.timeout=1s",  "--detection.window=5m",        "--detection.for=0s",
        "--detection.min-samples=3", "--alertmanager.url=http://127.0.0.1:2/", NULL,
    };
    lw_flags flags;
    char err[LW_CONFIG_ERR_LEN] = "";
    if (lw_flags_parse((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv, &flags, err,
                       sizeof(err)) != 0)
        fuzz_fail("fixed flags do not parse: %s", err);

    char *buf = malloc(size ? size : 1);
    if (!buf)
        goto out;
    if (size)
        memcpy(buf, data, size);
    parse_once(buf, size, NULL);
    parse_once(buf, size, &flags);
    check_first_line(data, size);
out:
    free(buf);
    lw_flags_cleanup(&flags);
    return 0;
}
