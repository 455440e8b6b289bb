/*
 * signame.h - the names of the signals a process can die of, for log
 * lines and attempt records ("SIGSEGV").
 */
#ifndef ZN_SIGNAME_H
#define ZN_SIGNAME_H

#include "compat.h"

/* "SIGSEGV" etc., or NULL for a signal without a name here. */
const char *zn_signal_name(int sig);

#endif
