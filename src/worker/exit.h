/*
 * exit.h - the exit statuses of `zenith work` that are not failures of
 * the job it holds: the supervisor reads them to attribute crashes.
 */
#ifndef ZN_WORKER_EXIT_H
#define ZN_WORKER_EXIT_H

/* The watchdog fired: the job was FAILed as "timeout" already. */
#define ZN_WORKER_EXIT_TIMEOUT 3
/*
 * The connection to the server broke while working: a job the last FETCH
 * leased may be the server's to hand out again, not run here.
 */
#define ZN_WORKER_EXIT_LOST 4

#endif
