/*
 * store.c - the helpers shared by every store back end: freeing what the
 * interface returns.
 */
#include "compat.h"

#include <stdlib.h>

#include "store/store.h"

void
zn_store_close(struct zn_store *st)
{
    if (st)
        st->ops->close(st);
}

void
zn_store_list_release(struct zn_store_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        zn_job_free(l->jobs[i]);
    free(l->jobs);
    l->jobs = NULL;
    l->n = 0;
    l->next = 0;
}

void
zn_attempts_free(struct zn_attempt *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].worker);
        free(a[i].outcome);
        free(a[i].errtype);
        free(a[i].message);
    }
    free(a);
}
