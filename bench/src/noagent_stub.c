/* noagent_stub.c — the agent's public API as no-ops, linked into a copy of
 * leaky-demo to measure the service without the agent (no interposition, no
 * sampling, no pprof server). Only for bench/.
 */
#include <errno.h>
#include <stdio.h>

#include "leakwatch/agent.h"

void lw_agent_options_init(lw_agent_options *opts)
{
    opts->listen_addr = "off";
    opts->heap_rate_bytes = 0;
    opts->cpu_profiler_enabled = false;
}

int lw_agent_start(const lw_agent_options *opts, char *err, size_t err_len)
{
    (void)opts;
    (void)err;
    (void)err_len;
    return 0;
}

void lw_agent_stop(void)
{
}

int lw_agent_port(void)
{
    return 0;
}

void lw_agent_set_heap_rate(int64_t rate_bytes)
{
    (void)rate_bytes;
}
