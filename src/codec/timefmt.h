/* Time parsing and formatting (pure: no I/O, no allocation, no global state, no libc time zone or
 * locale; thread-safe).
 *
 * sl_time_parse_fmt is a strptime for log timestamps, following the conventions of Ruby's
 * Time.strptime (what fluentd's time_format means) and glibc's strptime where they agree:
 *
 *   %Y  year, 1-4 digits              %y  2-digit year: 69-99 -> 19xx, 00-68 -> 20xx (1-2 digits)
 *   %m  month 1-12 (1-2 digits)       %d  day 1-31, valid for the month (1-2 digits)
 *   %e  day, space-padded allowed     %j  day of the year 1-366 (1-3 digits)
 *   %H  hour 0-23 (1-2 digits)        %k  hour, space-padded allowed
 *   %I  hour 1-12 (1-2 digits)        %l  hour 1-12, space-padded allowed
 *   %p  AM/PM, any case; applies to %I/%l only (%I without %p keeps its value: 12 is noon)
 *   %M  minute 0-59 (1-2 digits)      %S  second 0-60 (60 counts as the next second)
 *   %b %h %B  English month name, abbreviated or full, any case
 *   %a %A     English weekday name, abbreviated or full, any case; matched and ignored
 *   %z  Z, +hh, +hhmm or +hh:mm (also '-'; hh <= 23, mm <= 59)
 *   %Z  only UTC, GMT or Z (any case); any other zone name fails
 *   %s  epoch seconds, optional '-'; the date and time fields are then ignored (a fraction adds)
 *   %N %f  fraction of a second, 1-9 digits, scaled (".5" = 500 ms)
 *   %1N..%9N  exactly that many fraction digits (%3N ms, %6N us, %9N ns)
 *   %L  exactly 3 digits, milliseconds
 *   %T = %H:%M:%S   %F = %Y-%m-%d   %D = %m/%d/%y   %R = %H:%M   %n %t = whitespace   %% = '%'
 *
 * A whitespace character in the format matches zero or more whitespace characters in the input;
 * any other character matches itself. The whole input must be consumed (trailing whitespace is
 * allowed). Fields missing from the format default like Ruby's: without a year, the year comes
 * from ref_ns (see below), and then also the month and day unless the format has a month, day or
 * day of the year; with a year, a missing month or day is 1. Hours, minutes and seconds default
 * to 0. A format that yields no date or time field at all fails.
 *
 * The year when the format has none (%Y/%y/%s): the UTC year of ref_ns, or the year before if that
 * would put the time more than 31 days after ref_ns (syslog lines written before New Year and read
 * after it). A date that is invalid in that year (Feb 29) is tried in the year before as well.
 *
 * Non-goals: time zone names other than UTC/GMT/Z (no tz database), locales, %U/%W/%G week
 * numbers, %C, %E/%O modifiers, field widths other than on %N.
 */
#ifndef SL_TIMEFMT_H
#define SL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses s[0..len) (not NUL-terminated) against fmt (NUL-terminated) into ns since the epoch, UTC,
 * as described above. Returns 0, or -1 if the input does not match, a field is out of range, the
 * time is outside the int64 nanosecond range (1677..2262), or fmt has an unknown conversion. */
int sl_time_parse_fmt(const char *s, size_t len, const char *fmt, int64_t ref_ns, int64_t *ns);

/* Checks fmt at load time: returns 0 if every conversion is known and the format has at least one
 * conversion that sets a date or time field, or -1 with a reason naming the offending conversion
 * and its offset in why (NUL-terminated, truncated to whylen). */
int sl_time_fmt_valid(const char *fmt, char *why, size_t whylen);

/* Converts a Java SimpleDateFormat pattern (what kafka-fluentd-consumer's
 * fluentd.record.time.pattern took, e.g. "dd/MMM/yyyy:HH:mm:ss Z") into the equivalent format for
 * sl_time_parse_fmt ("%d/%b/%Y:%H:%M:%S %z"). Letters: y M L d D E a H h m s S z Z X and quoted
 * 'text'; others (G w W F u k K) are refused with a reason naming the letter and offset. Returns
 * 0, or -1 (also when out, of cap bytes, is too small). */
int sl_time_fmt_from_java(const char *java, char *out, size_t cap, char *why, size_t whylen);

/* Recognises s[0..len) without a format:
 *  - RFC 3339 (2026-11-27T10:00:00Z; fractions of 1-9 digits; offsets +hh:mm/-hh:mm; lowercase
 *    t/z and a space instead of T accepted; a leap second :60 is rejected);
 *  - a decimal epoch number in JSON number syntax (fraction and exponent allowed), in seconds;
 *    values above 1e11 are taken as milliseconds, above 1e14 as microseconds, above 1e17 as
 *    nanoseconds. Converted from the decimal digits, not through double, so it is exact.
 * No surrounding whitespace. Returns 0, or -1. */
int sl_time_parse_auto(const char *s, size_t len, int64_t *ns);

/* Formats ns since the epoch as RFC 3339 UTC with nanoseconds ("2026-11-27T10:00:00.123456789Z"),
 * NUL-terminated. out needs 31 bytes. Returns the length (30). */
size_t sl_time_format_rfc3339(int64_t ns, char *out);

/* Like sl_time_format_rfc3339 but with the shortest of 0, 3, 6 or 9 fraction digits that
 * represents ns exactly ("2026-11-27T10:00:00Z", "...00.120Z", "...00.000001Z"). NUL-terminated;
 * out needs 31 bytes. Returns the length (20, 24, 27 or 30). */
size_t sl_time_format_rfc3339_short(int64_t ns, char *out);

/* The date and time of day of the last second formatted, for callers that format many times
 * within one second (an output adding @timestamp to each record): set secs to INT64_MIN before
 * the first use. */
struct sl_time_cache {
    int64_t secs;
    char text[20]; /* "2026-11-27T10:00:00" */
};

/* sl_time_format_rfc3339_short through a cache: the same bytes, without recomputing the
 * calendar date while the second does not change. */
size_t sl_time_format_rfc3339_short_cached(struct sl_time_cache *c, int64_t ns, char *out);

#endif
