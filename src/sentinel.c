/*
 * sentinel.c - master discovery through Sentinel (sentinel.h).
 *
 * Why ROLE after asking: sentinels agree on a failover by gossip, so for a moment one may
 * still name the old master, now a replica (or a dead server). Writing there would fail
 * (READONLY) or, worse for a cache, read a replica that replication has left behind. So
 * the answer counts only once the named server says "master" itself; otherwise the next
 * sentinel is asked. Every sentinel's answer is kept in the error, so an operator reading
 * "no master" sees which sentinel said what.
 */
#include "sentinel.h"

#include "conn.h"
#include "errors.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LIST       4096u
#define WATCH_QUIET_MS 3000u /* no byte for this long: PING; as long again: next sentinel */
#define WATCH_RETRY_MS 200u

tc__sentinel_opts_t tc__sentinel_opts_of(const tc__endpoint_t *ep, uint32_t connect_timeout_ms,
                                         uint32_t command_timeout_ms) {
    tc__sentinel_opts_t o = {.sentinels = ep->sentinels,
                             .master_name = ep->master_name,
                             .user = ep->user,
                             .password = ep->password,
                             .sentinel_user = ep->sentinel_user,
                             .sentinel_password = ep->sentinel_password,
                             .connect_timeout_ms = connect_timeout_ms,
                             .command_timeout_ms = command_timeout_ms};
    return o;
}

static int split_addr(const char *s, tc__sentinel_addr_t *a) {
    return tc__endpoint_split_hostport(s, a->host, sizeof a->host, &a->port);
}

static int connect_to(const tc__sentinel_opts_t *o, const tc__sentinel_addr_t *a, int creds,
                      redisContext **c, tc_error_t *err) {
    /* creds: the master's (ROLE on the server a sentinel named); else a sentinel's own. */
    tc__endpoint_t ep = {.host = (char *)a->host,
                         .port = a->port,
                         .user = (char *)(creds ? o->user : o->sentinel_user),
                         .password = (char *)(creds ? o->password : o->sentinel_password)};
    return tc__conn_open(&ep, o->connect_timeout_ms, o->command_timeout_ms, c, err);
}

/* Append "; host:port what" to the running explanation (cut short when it is full). */
static void note(char *why, size_t cap, const tc__sentinel_addr_t *a, const char *what) {
    char part[TC__SENTINEL_HOST_MAX + 512];
    size_t used = strlen(why);
    int n =
        snprintf(part, sizeof part, "%s%s:%d %.400s", used ? "; " : "", a->host, a->port, what);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof part ? sizeof part - 1 : (size_t)n;
    if (used + 1 >= cap)
        return;
    if (len > cap - used - 1)
        len = cap - used - 1;
    memcpy(why + used, part, len);
    why[used + len] = '\0';
}

typedef enum { ASK_FOUND, ASK_UNKNOWN_NAME, ASK_FAILED } ask_t;

/* One sentinel's answer, checked with ROLE on the server it names. */
static ask_t ask_one(const tc__sentinel_opts_t *o, const tc__sentinel_addr_t *s,
                     tc__sentinel_addr_t *out, char *why, size_t cap) {
    redisContext *c = NULL;
    tc_error_t e;
    if (connect_to(o, s, 0, &c, &e) != 0) {
        note(why, cap, s, e.msg);
        return ASK_FAILED;
    }
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", o->master_name};
    size_t lens[3] = {8, 23, strlen(o->master_name)};
    redisReply *r = tc__conn_command_argv(c, 3, argv, lens);
    ask_t result = ASK_FAILED;
    tc__sentinel_addr_t m;
    if (!r) {
        note(why, cap, s, c->errstr);
    } else if (r->type == REDIS_REPLY_NIL) {
        note(why, cap, s, "knows no master of that name");
        result = ASK_UNKNOWN_NAME;
    } else if (r->type == REDIS_REPLY_ERROR) {
        note(why, cap, s, r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING ||
               r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
               r->element[0]->len > TC__SENTINEL_HOST_MAX ||
               memchr(r->element[0]->str, '\0', r->element[0]->len)) {
        note(why, cap, s, "answered something that is not [host, port]");
    } else {
        char *end;
        long port = strtol(r->element[1]->str, &end, 10);
        memcpy(m.host, r->element[0]->str, r->element[0]->len + 1);
        m.port = (int)port;
        if (*end || port < 1 || port > 65535)
            note(why, cap, s, "named a port outside 1..65535");
        else
            result = ASK_FOUND;
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    if (result != ASK_FOUND)
        return result;
    /* Is it a master by its own account? */
    if (connect_to(o, &m, 1, &c, &e) != 0) {
        char what[sizeof e.msg + 64];
        snprintf(what, sizeof what, "named %s:%d, which is unreachable", m.host, m.port);
        note(why, cap, s, what);
        return ASK_FAILED;
    }
    r = tc__conn_command_argv(c, 1, (const char *[]){"ROLE"}, (const size_t[]){4});
    int master = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 strcmp(r->element[0]->str, "master") == 0;
    if (r && r->type == REDIS_REPLY_ERROR) { /* e.g. an ACL without +role: say so */
        char what[TC__SENTINEL_HOST_MAX + 256];
        snprintf(what, sizeof what, "named %s:%d, which refused ROLE: %.160s", m.host, m.port,
                 r->str);
        note(why, cap, s, what);
        freeReplyObject(r);
        redisFree(c);
        return ASK_FAILED;
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    if (!master) {
        char what[TC__SENTINEL_HOST_MAX + 64];
        snprintf(what, sizeof what, "named %s:%d, which is not a master (yet?)", m.host,
                 m.port);
        note(why, cap, s, what);
        return ASK_FAILED;
    }
    *out = m;
    return ASK_FOUND;
}

int tc__sentinel_find_master(const tc__sentinel_opts_t *o, tc__sentinel_addr_t *out,
                             tc_error_t *err) {
    if (!o || !out || !o->sentinels || !o->master_name)
        return tc__fail(err, TC_EINVAL, "sentinel: NULL argument");
    size_t len = strlen(o->sentinels), nlen = strlen(o->master_name);
    if (len == 0 || len > MAX_LIST)
        return tc__fail(err, TC_ECONFIG,
                        "sentinel: the list of sentinels is empty or too long");
    if (nlen == 0 || nlen > 256 || strpbrk(o->master_name, " \r\n"))
        return tc__fail(err, TC_ECONFIG, "sentinel: the master name is empty, long or spaced");
    char *list = strdup(o->sentinels), *save = NULL;
    if (!list)
        return tc__fail(err, TC_ENOMEM, "out of memory");
    char why[1024] = "";
    int unknown = 0, answered = 0, rc = TC_EUNAVAILABLE;
    for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        tc__sentinel_addr_t a;
        if (split_addr(s, &a) != 0) {
            int rc_bad = tc__fail(err, TC_ECONFIG, "sentinel: \"%.64s\" is not host:port", s);
            free(list); /* s points into it: said first */
            return rc_bad;
        }
        ask_t got = ask_one(o, &a, out, why, sizeof why);
        if (got == ASK_FOUND) {
            rc = 0;
            break;
        }
        unknown += got == ASK_UNKNOWN_NAME;
        answered++;
    }
    free(list);
    if (rc == 0)
        return 0;
    if (answered && unknown == answered) /* every sentinel listed: a configuration error */
        return tc__fail(err, TC_ENOTFOUND, "sentinel: no master named \"%s\" (%s)",
                        o->master_name, why);
    return tc__fail(err, TC_EUNAVAILABLE, "sentinel: no master found for \"%s\": %s",
                    o->master_name, why);
}

int tc__sentinel_parse_switch(const char *msg, size_t len, const char *master_name,
                              tc__sentinel_addr_t *now) {
    char buf[2 * TC__SENTINEL_HOST_MAX + 300];
    if (!msg || !master_name || !now || len >= sizeof buf || memchr(msg, '\0', len))
        return -1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    char *save = NULL, *f[6];
    int n = 0;
    for (char *t = strtok_r(buf, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
        f[n++] = t;
    if (n != 5 || strcmp(f[0], master_name) != 0 || strlen(f[3]) > TC__SENTINEL_HOST_MAX)
        return -1;
    char *end;
    long port = strtol(f[4], &end, 10);
    if (*end || end == f[4] || port < 1 || port > 65535)
        return -1;
    strcpy(now->host, f[3]);
    now->port = (int)port;
    return 0;
}

/* ---- the watch ---- */

struct tc__sentinel_watch {
    tc__sentinel_opts_t o;
    char *sentinels, *name, *user, *password, *s_user, *s_password; /* owned copies */
    tc__sentinel_switch_fn fn;
    void *arg;
    pthread_t thread;
    int stop_pipe[2];
    atomic_int stopping;
    atomic_uint_fast64_t switches;
    tc__sentinel_addr_t last; /* the master as last seen (watch thread only); port 0: none */
    int deaf; /* the watch said no sentinel takes its subscription (watch thread only): it
                 says so once per spell, and again when one does */
};

static int wait_stop(tc__sentinel_watch_t *w, uint32_t ms) {
    struct pollfd p = {.fd = w->stop_pipe[0], .events = POLLIN};
    poll(&p, 1, (int)ms);
    return atomic_load(&w->stopping);
}

static void handle_message(tc__sentinel_watch_t *w, const redisReply *m) {
    tc__sentinel_addr_t now;
    if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
        m->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(m->element[0]->str, "message") == 0 &&
        m->element[2]->type == REDIS_REPLY_STRING &&
        tc__sentinel_parse_switch(m->element[2]->str, m->element[2]->len, w->name, &now) == 0) {
        atomic_fetch_add(&w->switches, 1);
        w->last = now;
        w->fn(w->arg, &now);
    }
}

/* After (re)subscribing: a switch announced while no sentinel was watched is caught here,
 * by asking where the master is now. */
static void check_master(tc__sentinel_watch_t *w) {
    tc__sentinel_addr_t now;
    tc_error_t err;
    if (tc__sentinel_find_master(&w->o, &now, &err) != 0)
        return;
    int moved = w->last.port && (now.port != w->last.port || strcmp(now.host, w->last.host));
    w->last = now;
    if (moved) {
        atomic_fetch_add(&w->switches, 1);
        w->fn(w->arg, &now);
    }
}

/* One subscription on sentinel a, until it fails, falls silent or the watch stops. Returns
 * 1 if it subscribed, else 0 with the reason appended to why. */
static int watch_one(tc__sentinel_watch_t *w, const tc__sentinel_addr_t *a, char *why,
                     size_t cap) {
    redisContext *c = NULL;
    tc_error_t err;
    if (connect_to(&w->o, a, 0, &c, &err) != 0) {
        note(why, cap, a, err.msg);
        return 0;
    }
    const char *sub[2] = {"SUBSCRIBE", "+switch-master"};
    size_t sub_lens[2] = {9, 14};
    redisReply *r = tc__conn_command_argv(c, 2, sub, sub_lens);
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    if (!ok) /* NOAUTH: the sentinels want sentinel_password */
        note(why, cap, a, r && r->type == REDIS_REPLY_ERROR ? r->str : "SUBSCRIBE failed");
    if (r)
        freeReplyObject(r);
    int subscribed = ok;
    if (ok && w->deaf) {
        w->deaf = 0;
        tc__log(w->o.log, TC__EV_SENTINEL, TC_LOG_INFO, NULL, 0,
                "Sentinel watch: subscribed to +switch-master again on %s:%d", a->host,
                a->port);
    }
    if (ok)
        check_master(w);
    uint64_t last = tc__now_ns();
    int pinged = 0;
    while (ok && !atomic_load(&w->stopping)) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            break;
        if (reply) {
            handle_message(w, reply);
            freeReplyObject(reply);
            continue;
        }
        uint64_t quiet_ms = (tc__now_ns() - last) / 1000000u;
        if (quiet_ms >= WATCH_QUIET_MS) {
            if (pinged)
                break; /* silent: the next sentinel */
            redisAppendCommand(c, "PING");
            int done = 0;
            while (!done && ok)
                ok = redisBufferWrite(c, &done) == REDIS_OK;
            pinged = 1;
            last = tc__now_ns();
            continue;
        }
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                              {.fd = w->stop_pipe[0], .events = POLLIN}};
        int n = poll(p, 2, (int)(WATCH_QUIET_MS - quiet_ms) + 1);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (redisBufferRead(c) != REDIS_OK)
                break;
            last = tc__now_ns();
            pinged = 0;
        }
    }
    redisFree(c);
    return subscribed;
}

static void *watch_main(void *arg) {
    tc__sentinel_watch_t *w = arg;
    while (!atomic_load(&w->stopping)) {
        char *list = strdup(w->sentinels), *save = NULL, why[1024] = "";
        int any = 0;
        for (char *s = list ? strtok_r(list, ",", &save) : NULL;
             s && !atomic_load(&w->stopping); s = strtok_r(NULL, ",", &save)) {
            tc__sentinel_addr_t a;
            if (split_addr(s, &a) == 0)
                any |= watch_one(w, &a, why, sizeof why);
            if (wait_stop(w, WATCH_RETRY_MS))
                break;
        }
        free(list);
        /* A whole pass without a subscription: failovers go unheard until one answers (the
         * pool still finds the master on every connect). Said when it starts, and when a
         * sentinel takes the subscription again. */
        if (!any && !w->deaf && !atomic_load(&w->stopping)) {
            w->deaf = 1;
            tc__log(w->o.log, TC__EV_SENTINEL, TC_LOG_WARN, NULL, 0,
                    "Sentinel watch: no sentinel took the +switch-master subscription (%s); "
                    "failovers are noticed only when a connection fails",
                    why);
        }
        if (wait_stop(w, WATCH_RETRY_MS))
            break;
    }
    return NULL;
}

static void watch_free(tc__sentinel_watch_t *w) {
    free(w->sentinels);
    free(w->name);
    free(w->user);
    free(w->password);
    free(w->s_user);
    free(w->s_password);
    free(w);
}

int tc__sentinel_watch_start(const tc__sentinel_opts_t *o, tc__sentinel_switch_fn fn, void *arg,
                             tc__sentinel_watch_t **out) {
    if (!out)
        return TC_EINVAL;
    *out = NULL;
    if (!o || !o->sentinels || !o->master_name || !fn)
        return TC_EINVAL;
    tc__sentinel_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return TC_ENOMEM;
    w->o = *o;
    w->sentinels = strdup(o->sentinels);
    w->name = strdup(o->master_name);
    w->o.sentinels = w->sentinels;
    w->o.master_name = w->name;
    /* The master's credentials, for its ROLE, and the sentinels' own. */
    w->user = o->user ? strdup(o->user) : NULL;
    w->password = o->password ? strdup(o->password) : NULL;
    w->o.user = w->user;
    w->o.password = w->password;
    w->s_user = o->sentinel_user ? strdup(o->sentinel_user) : NULL;
    w->s_password = o->sentinel_password ? strdup(o->sentinel_password) : NULL;
    w->o.sentinel_user = w->s_user;
    w->o.sentinel_password = w->s_password;
    w->fn = fn;
    w->arg = arg;
    if (!w->sentinels || !w->name || (o->user && !w->user) || (o->password && !w->password) ||
        (o->sentinel_user && !w->s_user) || (o->sentinel_password && !w->s_password) ||
        pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        watch_free(w);
        return TC_ENOMEM;
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        close(w->stop_pipe[0]);
        close(w->stop_pipe[1]);
        watch_free(w);
        return TC_EINTERNAL;
    }
    *out = w;
    return 0;
}

void tc__sentinel_watch_stop(tc__sentinel_watch_t *w) {
    if (!w)
        return;
    atomic_store(&w->stopping, 1);
    ssize_t n = write(w->stop_pipe[1], "x", 1);
    (void)n;
    pthread_join(w->thread, NULL);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    watch_free(w);
}

uint64_t tc__sentinel_watch_switches(tc__sentinel_watch_t *w) {
    return w ? atomic_load(&w->switches) : 0;
}
