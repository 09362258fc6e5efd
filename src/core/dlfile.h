/* Reading the dead-letter store back: its files, and one record per line.
 * The line format is written by core/deadletter.c; this is its only reader. */
#ifndef SL_DLFILE_H
#define SL_DLFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One dead-letter line, parsed. Strings point into the caller's line buffer (still JSON-escaped
 * where noted) or into the record's own decode buffers. */
struct sl_dl_line {
    char reason[128];
    int status;
    char error_type[128];
    char error_reason[512];
    char input[128];
    char output[128];
    char index[256];
    char tag[256];
    char topic[256];
    int32_t partition;
    int64_t offset; /* -1 when the source had no offset */
    int attempts;
    int64_t event_time_ns;
    char *payload; /* decoded bytes, malloc'd by sl_dl_parse_line; free with sl_dl_line_free */
    size_t payload_len;
};

/* Parses one line (without its newline). Returns 0, or -1 with a reason in err. */
int sl_dl_parse_line(const char *line, size_t len, struct sl_dl_line *out, char *err,
                     size_t errlen);
void sl_dl_line_free(struct sl_dl_line *l);

/* The store's *.ndjson files in dir (not subdirectories), sorted by name (= time). Returns the
 * count, or -1; *paths is a malloc'd array of malloc'd strings (sl_dl_files_free). */
int sl_dl_files(const char *dir, char ***paths);
void sl_dl_files_free(char **paths, int n);

/* Reads the next line of f into *buf (grown as needed). Returns its length, or -1 at EOF. */
ssize_t sl_dl_getline(FILE *f, char **buf, size_t *cap);

#endif
