/*
 * compat.h - included first by every .c file. The only place that holds
 * feature-test macros and platform conditionals.
 */
#ifndef ZN_COMPAT_H
#define ZN_COMPAT_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS, strsep, timegm, getrusage fields */
#endif

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define ZN_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ZN_NORETURN __attribute__((noreturn))
#else
#define ZN_PRINTF(fmt, args)
#define ZN_NORETURN
#endif

#define ZN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Linux lets a process adopt the orphans of its descendants (a "child
 * subreaper"), so a worker can reap what its exec children leave behind.
 */
#ifdef __linux__
#define HAVE_CHILD_SUBREAPER 1
#endif

/*
 * An address-space limit (RLIMIT_AS) breaks AddressSanitizer, which
 * reserves terabytes of shadow memory: sanitizer builds run worker
 * processes without one.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ADDRESS_LIMIT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ADDRESS_LIMIT 0
#endif
#endif
#ifndef HAVE_ADDRESS_LIMIT
#define HAVE_ADDRESS_LIMIT 1
#endif

#endif
