/*
 * proxy.c - the fault-injecting TCP proxy of proxy.h: one thread, one poll loop.
 *
 * Each accepted client gets its own upstream connection (a blocking connect bounded by
 * SO_SNDTIMEO: on loopback it answers at once, refused or not) and a conn_t with one buffer
 * per direction. Bytes read from one side wait in the buffer for the other side to take
 * them, and a side is only read while its buffer has room: a slow peer slows its sender,
 * as TCP would, and nothing is ever dropped by the proxy itself. Both sockets have
 * TCP_NODELAY, so the proxy adds no Nagle delay to request/reply traffic.
 *
 * Faults are states, not actions on the sockets:
 *   CONN_LIVE   polled and forwarded.
 *   CONN_CUT    (cut_subscribers) never polled again: no read, no write, no close. Both
 *               peers see a silent link until close_cut. Permanent, even across heal.
 *   all_cut     (cut_all) nothing is polled but the control pipe, the listen socket
 *               included; heal resumes everything that is not CONN_CUT.
 *   throttle    (throttle) a token bucket refilled every PROXY_TICK_MS limits the bytes
 *               read from the server side; while it is empty, server sides are not
 *               polled for input and the loop wakes every tick.
 * A connection is a subscriber once SUBSCRIBE (any case, PSUBSCRIBE too) appeared in its
 * client-to-server bytes; the last few bytes of each read are kept so a word split across
 * two reads is still seen.
 *
 * Threads: the proxy thread alone touches sockets and connection state. The test's calls
 * post one request under `mu`, wake the thread through a pipe and wait until it has been
 * applied, so when a call returns the fault is in effect.
 *
 * On EOF or error from either side the connection is closed on both sides, after one
 * best-effort attempt to deliver what was already buffered: a peer that sends its last
 * bytes and closes still has them delivered, and a dead Redis (killed, or CLIENT KILL)
 * shows its clients a closed connection, as it would without the proxy.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PROXY_BUF                (64 * 1024)
#define PROXY_MAX_CONNS          1024
#define PROXY_BACKLOG            128
#define PROXY_CONNECT_TIMEOUT_MS 200
#define PROXY_TICK_MS            5
#define SUBSCRIBE_WORD           "subscribe"
#define SUBSCRIBE_LEN            (sizeof SUBSCRIBE_WORD - 1)
#define SUBSCRIBE_TAIL           (SUBSCRIBE_LEN - 1)

typedef enum side { SIDE_CLIENT = 0, SIDE_SERVER = 1, SIDE_COUNT = 2 } side_t;

typedef enum conn_state { CONN_LIVE, CONN_CUT, CONN_CLOSED } conn_state_t;

typedef enum request {
    REQ_NONE,
    REQ_CUT_SUBSCRIBERS,
    REQ_CLOSE_CUT,
    REQ_CUT_ALL,
    REQ_HEAL,
    REQ_THROTTLE,
    REQ_STOP,
} request_t;

/* Bytes on their way to one side. */
typedef struct outbox {
    size_t len;
    char buf[PROXY_BUF];
} outbox_t;

typedef struct conn {
    int fd[SIDE_COUNT];
    conn_state_t state;
    int subscriber;
    size_t tail_len; /* the client's last bytes, for a word split across reads */
    char tail[SUBSCRIBE_TAIL];
    outbox_t to[SIDE_COUNT]; /* to[s]: read from the other side, waiting for side s */
} conn_t;

struct tc_test_proxy {
    int listen_fd, port, upstream_port;
    int wake[2];
    pthread_t thread;
    pthread_mutex_t mu; /* guards req, result, done */
    pthread_cond_t cv;
    request_t req;
    unsigned long req_arg;
    unsigned result;
    uint64_t done;
    atomic_ulong accepted;
    /* proxy thread only */
    int all_cut, stopping;
    unsigned long throttle_bps; /* 0: no limit */
    size_t tokens;              /* server-side bytes that may be read now */
    uint64_t refilled_ms;
    conn_t **conns;
    size_t nconns;
    struct pollfd *pfd;
};

/* ---- sockets ---- */

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback(0);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, PROXY_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int connect_upstream(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {0, PROXY_CONNECT_TIMEOUT_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || set_nonblocking(fd) != 0) {
        close(fd);
        return -1;
    }
    set_nodelay(fd);
    return fd;
}

/* ---- SUBSCRIBE detection ---- */

static int contains_word(const char *p, size_t n) {
    for (size_t i = 0; i + SUBSCRIBE_LEN <= n; i++)
        if (strncasecmp(p + i, SUBSCRIBE_WORD, SUBSCRIBE_LEN) == 0)
            return 1;
    return 0;
}

static void scan_client_bytes(conn_t *c, const char *data, size_t n) {
    if (c->subscriber)
        return;
    char edge[2 * SUBSCRIBE_TAIL];
    size_t take = n < SUBSCRIBE_TAIL ? n : SUBSCRIBE_TAIL;
    memcpy(edge, c->tail, c->tail_len);
    memcpy(edge + c->tail_len, data, take);
    size_t edge_len = c->tail_len + take;
    if (contains_word(edge, edge_len) || contains_word(data, n)) {
        c->subscriber = 1;
        return;
    }
    /* Keep the last SUBSCRIBE_TAIL bytes of everything seen. */
    const char *src = n >= SUBSCRIBE_TAIL ? data + n - SUBSCRIBE_TAIL : edge;
    size_t avail = n >= SUBSCRIBE_TAIL ? SUBSCRIBE_TAIL : edge_len;
    size_t keep = avail < SUBSCRIBE_TAIL ? avail : SUBSCRIBE_TAIL;
    memmove(c->tail, src + avail - keep, keep);
    c->tail_len = keep;
}

/* ---- connections ---- */

/* Send what waits for side s; 0, or -1 when that side is gone. */
static int flush_to(conn_t *c, side_t s) {
    outbox_t *o = &c->to[s];
    while (o->len > 0) {
        ssize_t w = send(c->fd[s], o->buf, o->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w <= 0)
            return -1;
        memmove(o->buf, o->buf + w, o->len - (size_t)w);
        o->len -= (size_t)w;
    }
    return 0;
}

static void conn_close(conn_t *c) {
    for (int s = 0; s < SIDE_COUNT; s++) {
        if (c->state == CONN_LIVE)
            (void)flush_to(c, (side_t)s);
        close(c->fd[s]);
        c->fd[s] = -1;
    }
    c->state = CONN_CLOSED;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Throttle: add the bytes earned since the last refill (at most one tick's worth kept). */
static void refill(tc_test_proxy_t *p) {
    uint64_t now = now_ms();
    size_t tick = p->throttle_bps * PROXY_TICK_MS / 1000 + 1;
    size_t earned = (size_t)((now - p->refilled_ms) * p->throttle_bps / 1000);
    if (earned) {
        p->tokens = p->tokens + earned > tick ? tick : p->tokens + earned;
        p->refilled_ms = now;
    }
}

/* How much may be read from side s now. */
static size_t budget(const tc_test_proxy_t *p, side_t s) {
    return s == SIDE_SERVER && p->throttle_bps ? p->tokens : PROXY_BUF;
}

/* Read from side s into the other side's outbox and pass it on. -1 when s is done. */
static int pump_from(tc_test_proxy_t *p, conn_t *c, side_t s) {
    side_t other = s == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;
    outbox_t *o = &c->to[other];
    while (o->len < sizeof o->buf && budget(p, s) > 0) {
        size_t room = sizeof o->buf - o->len;
        if (room > budget(p, s))
            room = budget(p, s);
        ssize_t r = recv(c->fd[s], o->buf + o->len, room, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r <= 0)
            return -1;
        if (s == SIDE_CLIENT)
            scan_client_bytes(c, o->buf + o->len, (size_t)r);
        else if (p->throttle_bps)
            p->tokens -= (size_t)r;
        o->len += (size_t)r;
    }
    return flush_to(c, other);
}

static void accept_all(tc_test_proxy_t *p) {
    for (;;) {
        int cfd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return; /* EAGAIN, or a connection that died in the backlog */
        atomic_fetch_add(&p->accepted, 1);
        set_nodelay(cfd);
        int sfd = p->nconns < PROXY_MAX_CONNS ? connect_upstream(p->upstream_port) : -1;
        conn_t *c = sfd >= 0 ? calloc(1, sizeof *c) : NULL;
        if (!c) { /* upstream down (killed Redis): the client sees its connection close */
            if (sfd >= 0)
                close(sfd);
            close(cfd);
            continue;
        }
        c->fd[SIDE_CLIENT] = cfd;
        c->fd[SIDE_SERVER] = sfd;
        c->state = CONN_LIVE;
        p->conns[p->nconns++] = c;
    }
}

static void drop_closed(tc_test_proxy_t *p) {
    size_t kept = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        if (p->conns[i]->state == CONN_CLOSED)
            free(p->conns[i]);
        else
            p->conns[kept++] = p->conns[i];
    }
    p->nconns = kept;
}

/* ---- requests ---- */

static unsigned apply_request(tc_test_proxy_t *p, request_t req) {
    unsigned n = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        conn_t *c = p->conns[i];
        if (req == REQ_CUT_SUBSCRIBERS && c->state == CONN_LIVE && c->subscriber) {
            c->state = CONN_CUT;
            n++;
        } else if (req == REQ_CLOSE_CUT && c->state == CONN_CUT) {
            conn_close(c);
            n++;
        }
    }
    if (req == REQ_THROTTLE) {
        p->throttle_bps = p->req_arg;
        p->tokens = 0;
        p->refilled_ms = now_ms();
    }
    if (req == REQ_CUT_ALL)
        p->all_cut = 1;
    else if (req == REQ_HEAL)
        p->all_cut = 0;
    else if (req == REQ_STOP)
        p->stopping = 1;
    drop_closed(p);
    return n;
}

static void serve_requests(tc_test_proxy_t *p) {
    char drain[64];
    while (read(p->wake[0], drain, sizeof drain) > 0) {
    }
    pthread_mutex_lock(&p->mu);
    if (p->req != REQ_NONE) {
        p->result = apply_request(p, p->req);
        p->req = REQ_NONE;
        p->done++;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

static unsigned request(tc_test_proxy_t *p, request_t req, unsigned long arg) {
    pthread_mutex_lock(&p->mu);
    while (p->req != REQ_NONE)
        pthread_cond_wait(&p->cv, &p->mu);
    p->req = req;
    p->req_arg = arg;
    uint64_t seen = p->done;
    (void)!write(p->wake[1], "x", 1);
    while (p->done == seen)
        pthread_cond_wait(&p->cv, &p->mu);
    unsigned result = p->result;
    pthread_mutex_unlock(&p->mu);
    return result;
}

/* ---- the loop ---- */

enum { PFD_WAKE = 0, PFD_LISTEN = 1, PFD_FIRST_CONN = 2 };

/* Fill p->pfd; returns how many entries. Connection i, side s sits at
 * PFD_FIRST_CONN + 2 i + s (fd -1, ignored by poll, when not polled). */
static nfds_t build_pollset(tc_test_proxy_t *p) {
    p->pfd[PFD_WAKE] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
    p->pfd[PFD_LISTEN] =
        (struct pollfd){.fd = p->all_cut ? -1 : p->listen_fd, .events = POLLIN};
    for (size_t i = 0; i < p->nconns; i++) {
        conn_t *c = p->conns[i];
        for (int s = 0; s < SIDE_COUNT; s++) {
            struct pollfd *f = &p->pfd[PFD_FIRST_CONN + 2 * i + (size_t)s];
            int other = s == SIDE_CLIENT ? SIDE_SERVER : SIDE_CLIENT;
            *f = (struct pollfd){.fd = -1};
            if (p->all_cut || c->state != CONN_LIVE)
                continue;
            f->fd = c->fd[s];
            int may_read = c->to[other].len < PROXY_BUF && budget(p, (side_t)s) > 0;
            f->events = (short)((may_read ? POLLIN : 0) | (c->to[s].len > 0 ? POLLOUT : 0));
        }
    }
    return (nfds_t)(PFD_FIRST_CONN + 2 * p->nconns);
}

static void serve_conn(tc_test_proxy_t *p, size_t i) {
    conn_t *c = p->conns[i];
    for (int s = 0; s < SIDE_COUNT && c->state == CONN_LIVE; s++) {
        short ev = p->pfd[PFD_FIRST_CONN + 2 * i + (size_t)s].revents;
        if ((ev & POLLOUT) && flush_to(c, (side_t)s) != 0)
            conn_close(c);
        else if ((ev & (POLLIN | POLLHUP | POLLERR)) && pump_from(p, c, (side_t)s) != 0)
            conn_close(c);
    }
}

static void *proxy_main(void *arg) {
    tc_test_proxy_t *p = arg;
    while (!p->stopping) {
        if (p->throttle_bps)
            refill(p);
        nfds_t n = build_pollset(p);
        if (poll(p->pfd, n, p->throttle_bps ? PROXY_TICK_MS : -1) < 0 && errno != EINTR)
            break;
        if (p->pfd[PFD_WAKE].revents) {
            /* A request may cut or drop connections: this round's results are void, and
             * polling is level-triggered, so nothing is lost by polling again. */
            serve_requests(p);
            continue;
        }
        for (size_t i = 0; i < p->nconns; i++)
            serve_conn(p, i);
        drop_closed(p);
        if (p->pfd[PFD_LISTEN].revents & POLLIN)
            accept_all(p);
    }
    return NULL;
}

/* ---- API ---- */

static void free_proxy(tc_test_proxy_t *p) {
    for (size_t i = 0; i < p->nconns; i++) {
        p->conns[i]->state = CONN_CUT; /* close without flushing */
        conn_close(p->conns[i]);
        free(p->conns[i]);
    }
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->conns);
    free(p->pfd);
    free(p);
}

tc_test_proxy_t *tc_test_proxy_start(int upstream_port) {
    tc_test_proxy_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->upstream_port = upstream_port;
    p->conns = calloc(PROXY_MAX_CONNS, sizeof *p->conns);
    p->pfd = calloc(PFD_FIRST_CONN + 2 * PROXY_MAX_CONNS, sizeof *p->pfd);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "proxy: pipe: %s\n", strerror(errno));
        free(p->conns);
        free(p->pfd);
        free(p);
        return NULL;
    }
    p->listen_fd = listen_loopback(&p->port);
    if (!p->conns || !p->pfd || p->listen_fd < 0 ||
        pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        fprintf(stderr, "proxy: could not start: %s\n", strerror(errno));
        free_proxy(p);
        return NULL;
    }
    return p;
}

int tc_test_proxy_port(const tc_test_proxy_t *p) {
    return p->port;
}

unsigned tc_test_proxy_cut_subscribers(tc_test_proxy_t *p) {
    return request(p, REQ_CUT_SUBSCRIBERS, 0);
}

unsigned tc_test_proxy_close_cut(tc_test_proxy_t *p) {
    return request(p, REQ_CLOSE_CUT, 0);
}

void tc_test_proxy_cut_all(tc_test_proxy_t *p) {
    (void)request(p, REQ_CUT_ALL, 0);
}

void tc_test_proxy_heal(tc_test_proxy_t *p) {
    (void)request(p, REQ_HEAL, 0);
}

void tc_test_proxy_throttle(tc_test_proxy_t *p, unsigned long bytes_per_sec) {
    (void)request(p, REQ_THROTTLE, bytes_per_sec);
}

unsigned long tc_test_proxy_accepted(tc_test_proxy_t *p) {
    return atomic_load(&p->accepted);
}

void tc_test_proxy_stop(tc_test_proxy_t *p) {
    if (!p)
        return;
    (void)request(p, REQ_STOP, 0);
    pthread_join(p->thread, NULL);
    free_proxy(p);
}
