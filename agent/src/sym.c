/* sym.c — in-process symbolization with elfutils libdwfl.
 *
 * One Dwfl session describes the own process (dwfl_linux_proc_report on
 * /proc/self/maps); it is rebuilt when the set of loaded objects changes
 * (dl_iterate_phdr's adds/subs counters) or an address falls outside every
 * known module. Function names come from the ELF symbol table (.symtab when
 * the file has one, so static functions are named; .dynsym otherwise), file
 * and line from DWARF when the module has it, the build id from the ELF note.
 * Module flags say truthfully whether names and lines are available.
 *
 * libdwfl is not thread-safe: everything runs under sym_mutex, and callers
 * bracket lookups with lw__sym_lock()/lw__sym_unlock().
 */
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent_internal.h"

typedef struct mod_info {
    Dwfl_Module *mod;
    char build_id[96];
    bool has_functions, has_lines, checked;
    struct mod_info *next;
} mod_info;

static pthread_mutex_t sym_mutex = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dwfl;
static unsigned long long dl_adds, dl_subs;
static mod_info *mods;
static char *debuginfo_path;

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static int count_objects(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    unsigned long long *v = arg;
    v[0] = info->dlpi_adds;
    v[1] = info->dlpi_subs;
    return 1;
}

static void drop_session(void)
{
    while (mods) {
        mod_info *m = mods;
        mods = m->next;
        lw__real_free(m);
    }
    if (dwfl)
        dwfl_end(dwfl);
    dwfl = NULL;
}

static void open_session(void)
{
    unsigned long long v[2] = {0, 0};
    lw__dl_iterate_phdr(count_objects, v);
    drop_session();
    dwfl = dwfl_begin(&callbacks);
    if (!dwfl)
        return;
    if (dwfl_linux_proc_report(dwfl, getpid()) != 0 || dwfl_report_end(dwfl, NULL, NULL) != 0) {
        dwfl_end(dwfl);
        dwfl = NULL;
        return;
    }
    dl_adds = v[0];
    dl_subs = v[1];
}

void lw__sym_after_fork_child(void)
{
    /* Unlocked at fork: the session is consistent and stays usable. Locked:
     * a thread that does not exist here was updating it; abandon it (a
     * small leak) and start afresh. */
    if (pthread_mutex_trylock(&sym_mutex) == 0) {
        pthread_mutex_unlock(&sym_mutex);
        return;
    }
    pthread_mutex_init(&sym_mutex, NULL);
    dwfl = NULL;
    mods = NULL;
}

void lw__sym_lock(void)
{
    pthread_mutex_lock(&sym_mutex);
    lw__tls_busy++;
    unsigned long long v[2] = {0, 0};
    lw__dl_iterate_phdr(count_objects, v);
    if (!dwfl || v[0] != dl_adds || v[1] != dl_subs)
        open_session();
}

void lw__sym_unlock(void)
{
    lw__tls_busy--;
    pthread_mutex_unlock(&sym_mutex);
}

static mod_info *info_for(Dwfl_Module *m)
{
    for (mod_info *i = mods; i; i = i->next)
        if (i->mod == m)
            return i;
    mod_info *i = lw__real_calloc(1, sizeof(*i));
    if (!i)
        return NULL;
    i->mod = m;
    const unsigned char *bits = NULL;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(m, &bits, &vaddr);
    for (int k = 0; k < len && (size_t)k * 2 + 2 < sizeof i->build_id; k++)
        snprintf(i->build_id + 2 * k, 3, "%02x", bits[k]);
    i->has_functions = dwfl_module_getsymtab(m) > 0;
    Dwarf_Addr bias;
    i->has_lines = dwfl_module_getdwarf(m, &bias) != NULL;
    i->next = mods;
    mods = i;
    return i;
}

void lw__sym_lookup(uintptr_t pc, bool is_return, lw_sym *out)
{
    memset(out, 0, sizeof *out);
    out->build_id = "";
    if (!dwfl)
        return;
    Dwarf_Addr addr = (Dwarf_Addr)pc - (is_return && pc > 0 ? 1 : 0);
    Dwfl_Module *m = dwfl_addrmodule(dwfl, addr);
    if (!m) {
        open_session(); /* maybe a new mapping, e.g. after dlopen */
        if (!dwfl)
            return;
        m = dwfl_addrmodule(dwfl, addr);
        if (!m)
            return;
    }
    Dwarf_Addr start = 0, end = 0;
    const char *mainfile = NULL, *name = dwfl_module_info(m, NULL, &start, &end, NULL, NULL,
                                                          &mainfile, NULL);
    mod_info *mi = info_for(m);
    out->module = m;
    out->mod_start = (uintptr_t)start;
    out->mod_end = (uintptr_t)end;
    out->mod_file = mainfile ? mainfile : name;
    if (mi) {
        out->build_id = mi->build_id;
        out->mod_has_functions = mi->has_functions;
        out->mod_has_lines = mi->has_lines;
    }
    GElf_Sym sym;
    GElf_Off off = 0;
    const char *fn = dwfl_module_addrinfo(m, addr, &off, &sym, NULL, NULL, NULL);
    if (fn) {
        out->function = fn;
        out->func_start = (uintptr_t)(addr - off);
    }
    Dwfl_Line *line = dwfl_module_getsrc(m, addr);
    if (line) {
        int ln = 0;
        const char *file = dwfl_lineinfo(line, NULL, &ln, NULL, NULL, NULL);
        if (file) {
            out->file = file;
            out->line = ln;
        }
    }
}
