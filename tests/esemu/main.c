/* esemu command line. See README.md for the API it serves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esemu.h"

struct emu g_emu;

static void usage(void)
{
    fprintf(stderr, "usage: esemu [--listen 127.0.0.1:PORT] [--control 127.0.0.1:PORT] "
                    "[--port-file PATH] [--count-only] [--max-content-length BYTES] [--seed N]\n"
                    "             [--distribution elasticsearch|opensearch] "
                    "[--version-number X.Y.Z]\n"
                    "             [--latency-field NAME]\n");
}

int main(int argc, char **argv)
{
    const char *listen_addr = "127.0.0.1:0", *control_addr = "127.0.0.1:0", *port_file = NULL;
    g_emu.max_content_length = 100u * 1024 * 1024;
    g_emu.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--count-only") == 0) {
            g_emu.store.count_only = 1;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        char *e = NULL;
        if (strcmp(a, "--listen") == 0) {
            listen_addr = v;
        } else if (strcmp(a, "--control") == 0) {
            control_addr = v;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--max-content-length") == 0) {
            unsigned long long x = strtoull(v, &e, 10);
            if (*e || x == 0) {
                usage();
                return 2;
            }
            g_emu.max_content_length = (size_t)x;
        } else if (strcmp(a, "--distribution") == 0) {
            if (strcmp(v, "opensearch") != 0 && strcmp(v, "elasticsearch") != 0) {
                usage();
                return 2;
            }
            g_emu.opensearch = strcmp(v, "opensearch") == 0;
        } else if (strcmp(a, "--version-number") == 0) {
            g_emu.version_number = v;
        } else if (strcmp(a, "--latency-field") == 0) {
            g_emu.latency_field = v;
        } else if (strcmp(a, "--seed") == 0) {
            g_emu.seed = strtoull(v, &e, 10);
            if (*e) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (!g_emu.version_number) g_emu.version_number = g_emu.opensearch ? "2.19.6" : "8.11.0";
    emu_seed(g_emu.seed);
    int rc = server_run(listen_addr, control_addr, port_file);
    store_reset(&g_emu.store);
    res_reset();
    free(g_emu.store.idx);
    for (size_t i = 0; i < g_emu.stats.n_ctypes; i++)
        free(g_emu.stats.ctype_name[i]);
    return rc;
}
