/* Time parsing and formatting; see timefmt.h for the accepted forms.
 *
 * Overview. Every conversion ends in days_from_civil (proleptic Gregorian calendar arithmetic), so
 * no libc time zone, locale or TZ variable is involved and the functions are pure and thread-safe.
 * RFC 3339 and epoch numbers (sl_time_parse_auto) have their own exact, fixed-shape parsers, which
 * sl_json_parse_time uses for time values in JSON. sl_time_parse_fmt walks the format once,
 * filling a struct of fields (composite conversions like %T recurse once into their expansion,
 * bounded by the format, never by the input), then range-checks the fields and computes the epoch.
 */
#include "codec/timefmt.h"

#include <stdio.h>
#include <string.h>

#include "codec/json_internal.h"

#define NS_PER_S 1000000000LL
#define DAY_S 86400LL

static inline int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* ---- calendar (moved from json.c) ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil): exact for
 * any year, no libc timezone state involved. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Fixed-width decimal field; -1 unless all n bytes are digits. */
static long digits(const char *p, size_t n)
{
    long v = 0;
    for (size_t k = 0; k < n; k++) {
        if (!is_digit((unsigned char)p[k])) return -1;
        v = v * 10 + (p[k] - '0');
    }
    return v;
}

/* secs * 1e9 + frac without overflow. Before 1970 with a fraction, one second is borrowed so the
 * product cannot overflow at the lower end of the range (1677-09-21T00:12:43.145224192Z is
 * INT64_MIN). */
static int to_ns(int64_t secs, int64_t frac, int64_t *ns)
{
    if (secs < 0 && frac > 0) {
        secs++;
        frac -= NS_PER_S;
    }
    int64_t r;
    if (__builtin_mul_overflow(secs, NS_PER_S, &r) || __builtin_add_overflow(r, frac, &r))
        return -1;
    *ns = r;
    return 0;
}

static int parse_rfc3339(const char *t, size_t n, int64_t *ns)
{
    /* YYYY-MM-DDThh:mm:ss is 19 bytes, then [.frac] and Z or +hh:mm. */
    if (n < 20 || t[4] != '-' || t[7] != '-' || t[13] != ':' || t[16] != ':') return -1;
    if (t[10] != 'T' && t[10] != 't' && t[10] != ' ') return -1;
    long y = digits(t, 4), mo = digits(t + 5, 2), d = digits(t + 8, 2);
    long h = digits(t + 11, 2), mi = digits(t + 14, 2), s = digits(t + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0)
        return -1;
    /* A leap second (:60) is rejected rather than folded into the next minute, where it could move
     * the event to another day's index; the caller falls back to the Kafka timestamp. */
    if (s > 59 || (unsigned long)d > days_in_month(y, (unsigned)mo)) return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && t[i] == '.') {
        size_t nd = 0;
        i++;
        while (i < n && is_digit((unsigned char)t[i]) && nd < 10) {
            frac = frac * 10 + (t[i] - '0');
            i++;
            nd++;
        }
        if (nd == 0 || nd > 9) return -1;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    if (i >= n) return -1;
    long off_s = 0;
    if (t[i] == 'Z' || t[i] == 'z') {
        i++;
    } else if (t[i] == '+' || t[i] == '-') {
        if (n - i < 6 || t[i + 3] != ':') return -1;
        long oh = digits(t + i + 1, 2), om = digits(t + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        off_s = (oh * 3600 + om * 60) * (t[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s - off_s;
    return to_ns(secs, frac, ns);
}

/* An epoch number in JSON number syntax, unit chosen by magnitude (see json.h). Converted from
 * its decimal digits, not through double, so nanosecond values stay exact. */
static int parse_epoch(const char *t, size_t n, int64_t *ns)
{
    struct sl__json_err e;
    size_t end;
    if (n == 0 || sl__json_number_end(t, n, 0, &end, &e) < 0 || end != n) return -1;
    int neg = t[0] == '-';
    /* value = D * 10^E, D = significant digits without leading/trailing zeros */
    char D[40];
    size_t nd = 0;
    long E = 0;
    size_t i = (size_t)neg;
    int seen_frac = 0;
    for (; i < n && (is_digit((unsigned char)t[i]) || t[i] == '.'); i++) {
        if (t[i] == '.') {
            seen_frac = 1;
            continue;
        }
        if (seen_frac) E--;
        if (nd == 0 && t[i] == '0') continue;
        if (nd == sizeof(D)) return -1;
        D[nd++] = t[i];
    }
    if (i < n) { /* exponent */
        i++;
        int eneg = t[i] == '-';
        if (t[i] == '+' || t[i] == '-') i++;
        long ev = 0;
        for (; i < n; i++) {
            if (ev > 100000) return -1;
            ev = ev * 10 + (t[i] - '0');
        }
        E += eneg ? -ev : ev;
    }
    while (nd > 0 && D[nd - 1] == '0') {
        nd--;
        E++;
    }
    if (nd == 0) {
        *ns = 0;
        return 0;
    }
    /* integer part ip (saturated) and whether a fraction remains, for the unit thresholds */
    long intdigits = (long)nd + E;
    uint64_t ip = 0;
    int sat = 0;
    for (long k = 0; k < intdigits; k++) {
        unsigned dg = k < (long)nd ? (unsigned)(D[k] - '0') : 0;
        if (ip > (UINT64_MAX - dg) / 10) {
            sat = 1;
            break;
        }
        ip = ip * 10 + dg;
    }
    int has_frac = (long)nd > intdigits;
    const uint64_t T11 = 100000000000ULL, T14 = 100000000000000ULL, T17 = 100000000000000000ULL;
#define ABOVE(T) (sat || ip > (T) || (ip == (T) && has_frac))
    long scale = ABOVE(T17) ? 0 : ABOVE(T14) ? 3 : ABOVE(T11) ? 6 : 9;
#undef ABOVE
    long shift = E + scale;
    long keep = (long)nd + (shift < 0 ? shift : 0);
    uint64_t acc = 0;
    for (long k = 0; k < keep; k++) {
        unsigned dg = (unsigned)(D[k] - '0');
        if (acc > (UINT64_MAX - dg) / 10) return -1;
        acc = acc * 10 + dg;
    }
    for (long k = 0; k < shift && acc; k++) {
        if (acc > UINT64_MAX / 10) return -1;
        acc *= 10;
    }
    if (neg) {
        if (acc > (uint64_t)INT64_MAX + 1) return -1;
        *ns = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    } else {
        if (acc > (uint64_t)INT64_MAX) return -1;
        *ns = (int64_t)acc;
    }
    return 0;
}

static void put_dec(char *out, unsigned long v, int width)
{
    for (int k = width - 1; k >= 0; k--) {
        out[k] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* "YYYY-MM-DDTHH:MM:SS" of secs since the epoch, 19 bytes. */
static void format_secs(int64_t secs, char *out)
{
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* int64 nanoseconds span 1677..2262, so the year always has four digits */
    put_dec(out, (unsigned long)y, 4);
    out[4] = '-';
    put_dec(out + 5, m, 2);
    out[7] = '-';
    put_dec(out + 8, d, 2);
    out[10] = 'T';
    put_dec(out + 11, (unsigned long)(sod / 3600), 2);
    out[13] = ':';
    put_dec(out + 14, (unsigned long)(sod / 60 % 60), 2);
    out[16] = ':';
    put_dec(out + 17, (unsigned long)(sod % 60), 2);
}

/* floor division, so times before 1970 still get a fraction in [0, 1e9) */
static int64_t split_ns(int64_t ns, int64_t *frac)
{
    int64_t secs = ns / NS_PER_S;
    *frac = ns % NS_PER_S;
    if (*frac < 0) {
        *frac += NS_PER_S;
        secs--;
    }
    return secs;
}

size_t sl_time_format_rfc3339(int64_t ns, char *out)
{
    int64_t frac;
    format_secs(split_ns(ns, &frac), out);
    out[19] = '.';
    put_dec(out + 20, (unsigned long)frac, 9);
    out[29] = 'Z';
    out[30] = '\0';
    return 30;
}

int sl_time_parse_auto(const char *s, size_t len, int64_t *ns)
{
    if (len >= 20 && s[4] == '-') return parse_rfc3339(s, len, ns);
    return parse_epoch(s, len, ns);
}

size_t sl_time_format_rfc3339_short_cached(struct sl_time_cache *c, int64_t ns, char *out)
{
    int64_t frac;
    int64_t secs = split_ns(ns, &frac);
    if (secs != c->secs) {
        format_secs(secs, c->text);
        c->secs = secs;
    }
    memcpy(out, c->text, 19);
    size_t end = 19;
    if (frac) {
        int digits = frac % 1000000 == 0 ? 3 : frac % 1000 == 0 ? 6 : 9;
        int64_t v = digits == 3 ? frac / 1000000 : digits == 6 ? frac / 1000 : frac;
        out[19] = '.';
        put_dec(out + 20, (unsigned long)v, digits);
        end = 20 + (size_t)digits;
    }
    out[end] = 'Z';
    out[end + 1] = '\0';
    return end + 1;
}

size_t sl_time_format_rfc3339_short(int64_t ns, char *out)
{
    struct sl_time_cache c = {.secs = INT64_MIN};
    return sl_time_format_rfc3339_short_cached(&c, ns, out);
}

/* ---- strptime ---- */

/* Fields collected while walking the format; has_* say which were seen. */
struct fields {
    int64_t year;
    int mon, mday, yday, hour, hour12, min, sec;
    int pm;
    int64_t frac; /* ns */
    long off;     /* seconds east of UTC */
    int64_t epoch;
    unsigned has; /* F_* bits */
};

enum {
    F_YEAR = 1u << 0,
    F_MON = 1u << 1,
    F_MDAY = 1u << 2,
    F_YDAY = 1u << 3,
    F_HOUR = 1u << 4,
    F_HOUR12 = 1u << 5,
    F_MIN = 1u << 6,
    F_SEC = 1u << 7,
    F_PM = 1u << 8,
    F_FRAC = 1u << 9,
    F_EPOCH = 1u << 10,
};

struct cursor {
    const char *s;
    size_t len;
    size_t i;
};

static const char *const month_names[12] = {"january",   "february", "march",    "april",
                                            "may",       "june",     "july",     "august",
                                            "september", "october",  "november", "december"};
static const char *const day_names[7] = {"sunday",   "monday", "tuesday", "wednesday",
                                         "thursday", "friday", "saturday"};

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void skip_space(struct cursor *c)
{
    while (c->i < c->len && is_space((unsigned char)c->s[c->i]))
        c->i++;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive match of the lowercase word w (its first n bytes) at the cursor. */
static int match_word(struct cursor *c, const char *w, size_t n)
{
    if (c->len - c->i < n) return 0;
    for (size_t k = 0; k < n; k++) {
        if (lower((unsigned char)c->s[c->i + k]) != (unsigned char)w[k]) return 0;
    }
    c->i += n;
    return 1;
}

/* A full or 3-letter English name from names[0..n); returns its index or -1. */
static int match_name(struct cursor *c, const char *const *names, int n)
{
    for (int k = 0; k < n; k++) {
        if (match_word(c, names[k], strlen(names[k]))) return k;
    }
    for (int k = 0; k < n; k++) {
        if (match_word(c, names[k], 3)) return k;
    }
    return -1;
}

/* Between minw and maxw digits (greedy), value in [lo, hi]. */
static int number(struct cursor *c, int minw, int maxw, long lo, long hi, long *v)
{
    long x = 0;
    int w = 0;
    while (w < maxw && c->i < c->len && is_digit((unsigned char)c->s[c->i])) {
        x = x * 10 + (c->s[c->i] - '0');
        c->i++;
        w++;
    }
    if (w < minw || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

/* A field that may be padded with spaces (%e %k %l). */
static int padded(struct cursor *c, long lo, long hi, long *v)
{
    while (c->i < c->len && c->s[c->i] == ' ')
        c->i++;
    return number(c, 1, 2, lo, hi, v);
}

/* A fraction of minw..maxw digits, scaled to nanoseconds. */
static int fraction(struct cursor *c, int minw, int maxw, struct fields *f)
{
    size_t start = c->i;
    long v;
    if (number(c, minw, maxw, 0, 999999999, &v) < 0) return -1;
    int64_t frac = v;
    for (size_t k = c->i - start; k < 9; k++)
        frac *= 10;
    f->frac = frac;
    f->has |= F_FRAC;
    return 0;
}

static int zone_offset(struct cursor *c, struct fields *f)
{
    if (c->i >= c->len) return -1;
    char sign = c->s[c->i];
    if (sign == 'Z' || sign == 'z') {
        c->i++;
        f->off = 0;
        return 0;
    }
    if (sign != '+' && sign != '-') return -1;
    c->i++;
    long hh, mm = 0;
    if (number(c, 2, 2, 0, 23, &hh) < 0) return -1;
    /* ':' belongs to the offset only when two digits follow */
    if (c->i + 2 < c->len && c->s[c->i] == ':' && is_digit((unsigned char)c->s[c->i + 1]) &&
        is_digit((unsigned char)c->s[c->i + 2]))
        c->i++;
    if (c->i + 1 < c->len && is_digit((unsigned char)c->s[c->i]) &&
        is_digit((unsigned char)c->s[c->i + 1])) {
        if (number(c, 2, 2, 0, 59, &mm) < 0) return -1;
    }
    f->off = (hh * 3600 + mm * 60) * (sign == '-' ? -1 : 1);
    return 0;
}

static int epoch_seconds(struct cursor *c, struct fields *f)
{
    int neg = c->i < c->len && c->s[c->i] == '-';
    c->i += (size_t)neg;
    int64_t v = 0;
    int w = 0;
    while (c->i < c->len && is_digit((unsigned char)c->s[c->i])) {
        /* beyond 1e13 s the nanoseconds overflow anyway; stop before int64 does */
        if (++w > 14) return -1;
        v = v * 10 + (c->s[c->i] - '0');
        c->i++;
    }
    if (w == 0) return -1;
    f->epoch = neg ? -v : v;
    f->has |= F_EPOCH;
    return 0;
}

/* Conversions that take no width; 'N' takes an optional 1-9 width. */
static const char known_convs[] = "YmdHMSeklyhbBaAjIpzZsNLfTFDRnt%";

static const char *expansion(char conv)
{
    switch (conv) {
    case 'T':
        return "%H:%M:%S";
    case 'F':
        return "%Y-%m-%d";
    case 'D':
        return "%m/%d/%y";
    case 'R':
        return "%H:%M";
    case 'n':
    case 't':
        return " ";
    default:
        return NULL;
    }
}

static int walk(const char *fmt, struct cursor *c, struct fields *f);

/* One known conversion at the cursor. */
static int convert(char conv, int width, struct cursor *c, struct fields *f)
{
    long v;
    int k;
    const char *exp = expansion(conv);
    if (exp) return walk(exp, c, f);
    switch (conv) {
    case 'Y':
        if (number(c, 1, 4, 0, 9999, &v) < 0) return -1;
        f->year = v;
        f->has |= F_YEAR;
        return 0;
    case 'y':
        if (number(c, 1, 2, 0, 99, &v) < 0) return -1;
        f->year = v < 69 ? 2000 + v : 1900 + v;
        f->has |= F_YEAR;
        return 0;
    case 'm':
        if (number(c, 1, 2, 1, 12, &v) < 0) return -1;
        f->mon = (int)v;
        f->has |= F_MON;
        return 0;
    case 'b':
    case 'h':
    case 'B':
        if ((k = match_name(c, month_names, 12)) < 0) return -1;
        f->mon = k + 1;
        f->has |= F_MON;
        return 0;
    case 'd':
    case 'e':
        if ((conv == 'd' ? number(c, 1, 2, 1, 31, &v) : padded(c, 1, 31, &v)) < 0) return -1;
        f->mday = (int)v;
        f->has |= F_MDAY;
        return 0;
    case 'j':
        if (number(c, 1, 3, 1, 366, &v) < 0) return -1;
        f->yday = (int)v;
        f->has |= F_YDAY;
        return 0;
    case 'a':
    case 'A':
        return match_name(c, day_names, 7) < 0 ? -1 : 0;
    case 'H':
    case 'k':
        if ((conv == 'H' ? number(c, 1, 2, 0, 23, &v) : padded(c, 0, 23, &v)) < 0) return -1;
        f->hour = (int)v;
        f->has |= F_HOUR;
        return 0;
    case 'I':
    case 'l':
        if ((conv == 'I' ? number(c, 1, 2, 1, 12, &v) : padded(c, 1, 12, &v)) < 0) return -1;
        f->hour12 = (int)v;
        f->has |= F_HOUR12;
        return 0;
    case 'p':
        if (match_word(c, "am", 2)) {
            f->pm = 0;
        } else if (match_word(c, "pm", 2)) {
            f->pm = 1;
        } else {
            return -1;
        }
        f->has |= F_PM;
        return 0;
    case 'M':
        if (number(c, 1, 2, 0, 59, &v) < 0) return -1;
        f->min = (int)v;
        f->has |= F_MIN;
        return 0;
    case 'S':
        if (number(c, 1, 2, 0, 60, &v) < 0) return -1;
        f->sec = (int)v;
        f->has |= F_SEC;
        return 0;
    case 'z':
        return zone_offset(c, f);
    case 'Z':
        if (match_word(c, "utc", 3) || match_word(c, "gmt", 3) || match_word(c, "z", 1)) {
            f->off = 0;
            return 0;
        }
        return -1;
    case 's':
        return epoch_seconds(c, f);
    case 'N':
    case 'f':
        return width ? fraction(c, width, width, f) : fraction(c, 1, 9, f);
    case 'L':
        return fraction(c, 3, 3, f);
    case '%':
        if (c->i >= c->len || c->s[c->i] != '%') return -1;
        c->i++;
        return 0;
    default:
        return -1;
    }
}

/* Reads the conversion after the '%' at fmt[0]: stores it and its width, returns its length in
 * fmt (2 or 3), or 0 if it is unknown or malformed. */
static size_t conversion(const char *fmt, char *conv, int *width)
{
    *width = 0;
    if (fmt[1] >= '1' && fmt[1] <= '9' && fmt[2] == 'N') {
        *width = fmt[1] - '0';
        *conv = 'N';
        return 3;
    }
    if (fmt[1] == '\0' || !strchr(known_convs, fmt[1])) return 0;
    *conv = fmt[1];
    return 2;
}

static int walk(const char *fmt, struct cursor *c, struct fields *f)
{
    for (size_t k = 0; fmt[k];) {
        unsigned char fc = (unsigned char)fmt[k];
        if (fc == '%') {
            char conv;
            int width;
            size_t n = conversion(fmt + k, &conv, &width);
            if (n == 0 || convert(conv, width, c, f) < 0) return -1;
            k += n;
        } else if (is_space(fc)) {
            skip_space(c);
            k++;
        } else {
            if (c->i >= c->len || (unsigned char)c->s[c->i] != fc) return -1;
            c->i++;
            k++;
        }
    }
    return 0;
}

static int compose(const struct fields *f, int64_t year, int mon, int mday, int64_t *ns)
{
    int64_t days;
    if (f->has & F_YDAY && !(f->has & (F_MON | F_MDAY))) {
        if (f->yday > 365 + is_leap(year)) return -1;
        days = days_from_civil(year, 1, 1) + f->yday - 1;
    } else {
        if ((unsigned)mday > days_in_month(year, (unsigned)mon)) return -1;
        days = days_from_civil(year, (unsigned)mon, (unsigned)mday);
    }
    int hour = f->has & F_HOUR ? f->hour : 0;
    if (f->has & F_HOUR12) hour = f->has & F_PM ? f->hour12 % 12 + 12 * f->pm : f->hour12;
    int64_t secs = days * DAY_S + hour * 3600 + (int64_t)f->min * 60 + f->sec - f->off;
    return to_ns(secs, f->frac, ns);
}

static int after_by_more_than_31_days(int64_t t, int64_t ref)
{
    int64_t d;
    if (__builtin_sub_overflow(t, ref, &d)) return t > ref;
    return d > 31 * DAY_S * NS_PER_S;
}

static int finish(const struct fields *f, int64_t ref_ns, int64_t *ns)
{
    if (!(f->has & ~F_PM)) return -1; /* no date or time field at all */
    if (f->has & F_EPOCH) return to_ns(f->epoch, f->frac, ns);
    int mon = f->has & F_MON ? f->mon : 1;
    int mday = f->has & F_MDAY ? f->mday : 1;
    if (f->has & F_YEAR) return compose(f, f->year, mon, mday, ns);

    /* The year (and, without any day field, the date) from ref_ns, in UTC. */
    int64_t rdays = ref_ns / NS_PER_S / DAY_S;
    if (ref_ns < 0 && rdays * DAY_S * NS_PER_S != ref_ns) rdays--;
    int64_t ry;
    unsigned rm, rd;
    civil_from_days(rdays, &ry, &rm, &rd);
    if (!(f->has & (F_MON | F_MDAY | F_YDAY))) {
        mon = (int)rm;
        mday = (int)rd;
    } else if (!(f->has & F_MON) && !(f->has & F_YDAY)) {
        mon = (int)rm;
    }
    int64_t t;
    if (compose(f, ry, mon, mday, &t) == 0 && !after_by_more_than_31_days(t, ref_ns)) {
        *ns = t;
        return 0;
    }
    return compose(f, ry - 1, mon, mday, ns);
}

int sl_time_parse_fmt(const char *s, size_t len, const char *fmt, int64_t ref_ns, int64_t *ns)
{
    struct cursor c = {s, len, 0};
    struct fields f;
    memset(&f, 0, sizeof(f));
    if (walk(fmt, &c, &f) < 0) return -1;
    skip_space(&c);
    if (c.i != len) return -1;
    return finish(&f, ref_ns, ns);
}

int sl_time_fmt_valid(const char *fmt, char *why, size_t whylen)
{
    int fields = 0;
    for (size_t k = 0; fmt[k];) {
        if (fmt[k] != '%') {
            k++;
            continue;
        }
        char conv;
        int width;
        size_t n = conversion(fmt + k, &conv, &width);
        if (n == 0) {
            if (fmt[k + 1] == '\0')
                snprintf(why, whylen, "time format ends with a lone %% at offset %zu", k);
            else if (fmt[k + 1] >= '0' && fmt[k + 1] <= '9')
                snprintf(why, whylen,
                         "unsupported conversion %%%c%c at offset %zu (a width is only allowed "
                         "on %%N)",
                         fmt[k + 1], fmt[k + 2] ? fmt[k + 2] : ' ', k);
            else
                snprintf(why, whylen, "unknown conversion %%%c at offset %zu", fmt[k + 1], k);
            return -1;
        }
        if (!strchr("aAnptzZ%", conv)) fields = 1;
        k += n;
    }
    if (!fields) {
        snprintf(why, whylen, "time format has no date or time conversion");
        return -1;
    }
    return 0;
}

/* Java SimpleDateFormat letters and the conversions they become. Counts are "at least": the
 * longest matching row wins, as in SimpleDateFormat (MMM is a name, MM a number). */
static const struct {
    char letter;
    int min_count;
    const char *conv;
} java_map[] = {
    {'y', 3, "%Y"}, {'y', 2, "%y"}, {'y', 1, "%Y"}, {'M', 4, "%B"}, {'M', 3, "%b"}, {'M', 1, "%m"},
    {'L', 4, "%B"}, {'L', 3, "%b"}, {'L', 1, "%m"}, {'d', 1, "%d"}, {'D', 1, "%j"}, {'E', 4, "%A"},
    {'E', 1, "%a"}, {'a', 1, "%p"}, {'H', 1, "%H"}, {'h', 1, "%I"}, {'m', 1, "%M"}, {'s', 1, "%S"},
    {'z', 1, "%Z"}, {'Z', 1, "%z"}, {'X', 1, "%z"},
};

int sl_time_fmt_from_java(const char *java, char *out, size_t cap, char *why, size_t whylen)
{
    size_t w = 0;
#define PUT(str)                                                                                   \
    do {                                                                                           \
        size_t l_ = strlen(str);                                                                   \
        if (w + l_ + 1 > cap) {                                                                    \
            snprintf(why, whylen, "pattern too long");                                             \
            return -1;                                                                             \
        }                                                                                          \
        memcpy(out + w, str, l_);                                                                  \
        w += l_;                                                                                   \
    } while (0)
    for (size_t k = 0; java[k];) {
        char c = java[k];
        if (c == '\'') {
            /* '' is a quote; 'text' is literal text */
            if (java[k + 1] == '\'') {
                PUT("'");
                k += 2;
                continue;
            }
            size_t e = k + 1;
            while (java[e] && java[e] != '\'')
                e++;
            if (!java[e]) {
                snprintf(why, whylen, "unterminated quote at offset %zu", k);
                return -1;
            }
            for (size_t i = k + 1; i < e; i++) {
                char lit[3] = {java[i], 0, 0};
                if (java[i] == '%') lit[1] = '%';
                PUT(lit);
            }
            k = e + 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            char lit[3] = {c, 0, 0};
            if (c == '%') lit[1] = '%';
            PUT(lit);
            k++;
            continue;
        }
        int n = 1;
        while (java[k + (size_t)n] == c)
            n++;
        const char *conv = NULL;
        char frac[8];
        if (c == 'S') {
            if (n > 9) {
                snprintf(why, whylen, "more than 9 'S' at offset %zu", k);
                return -1;
            }
            snprintf(frac, sizeof frac, "%%%dN", n);
            conv = frac;
        }
        for (size_t i = 0; !conv && i < sizeof java_map / sizeof java_map[0]; i++) {
            if (java_map[i].letter == c && n >= java_map[i].min_count) conv = java_map[i].conv;
        }
        if (!conv) {
            snprintf(why, whylen, "unsupported SimpleDateFormat letter '%c' at offset %zu", c, k);
            return -1;
        }
        PUT(conv);
        k += (size_t)n;
    }
#undef PUT
    out[w] = '\0';
    return sl_time_fmt_valid(out, why, whylen);
}
