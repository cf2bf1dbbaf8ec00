// cxx_service.cpp — a C++ program for the agent's LD_PRELOAD test (built
// without the agent): operator new/delete reach the agent through
// libstdc++'s malloc calls, and C++ names are demangled in profiles.
// It keeps 4 MiB in std::vector buffers made by cxx::Cache::fill, frees
// churn made by cxx_churn, prints "ready" and waits for SIGTERM.
#include <csignal>
#include <cstdio>
#include <memory>
#include <pthread.h>
#include <vector>

namespace cxx {
struct Cache {
    std::vector<std::unique_ptr<std::vector<char>>> bufs;
    __attribute__((noinline)) void fill(int n)
    {
        for (int i = 0; i < n; i++)
            bufs.emplace_back(new std::vector<char>(1 << 20, 'x'));
    }
};
} // namespace cxx

__attribute__((noinline)) static void cxx_churn()
{
    for (int i = 0; i < 10000; i++) {
        std::unique_ptr<int[]> p(new int[i % 100 + 1]);
        p[0] = i;
    }
}

int main()
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    cxx::Cache cache;
    cache.fill(4);
    cxx_churn();
    std::printf("ready\n");
    std::fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    return 0;
}
