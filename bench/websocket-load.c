// SPDX-License-Identifier: Apache-2.0
// The load engine of bench/websocket-load.py (--engine c): the same closed loop as its Python
// engine, in C, so that the load core (this client and the upstream) is not what limits the rate.
//
//   websocket-load HOST PORT PATH CONNS SIZE WINDOW COUNTER_FILE
//
// Opens CONNS WebSocket connections (handshake: 101, Upgrade: websocket, Sec-WebSocket-Accept
// checked), then on each keeps WINDOW binary messages of SIZE bytes in flight: one masked frame,
// built once, sent with one send() per message; every echo is parsed (frame header) and its
// payload compared with what was sent. COUNTER_FILE (created, 64 bytes, shared memory) holds
// [0] state (1 = all connections open and loaded, 2 = stopped cleanly), [1] echoes received.
// The wrapper reads [1] at the start and end of its measurement window. SIGTERM or SIGINT: no
// new messages, wait (at most 10 s) for those in flight, close every connection with a close
// frame (1000), exit 0. Any surprise (another status, a close frame, a text or fragmented frame,
// a masked server frame, a payload that differs, a connection that ends, 10 s without an echo)
// is printed to stderr and exits 1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    unsigned char *rbuf;
    size_t rlen;
    long out_frames;  // whole frames still to send (the first from out_off)
    size_t out_off;
    long in_flight;   // sent (or queued) and not echoed yet
    int want_out;
} conn_t;

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void die(const char *fmt, const char *detail) {
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char *frame;       // the masked client frame
static size_t frame_len;
static unsigned char *payload;     // what every echo must carry
static size_t size;
static int epfd;
static volatile uint64_t *counter;

static void set_out(conn_t *c, int want) {
    if (c->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    c->want_out = want;
}

static void flush(conn_t *c) {
    while (c->out_frames > 0) {
        ssize_t n = send(c->fd, frame + c->out_off, frame_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            die("send: %s", strerror(errno));
        }
        c->out_off += (size_t)n;
        if (c->out_off == frame_len) { c->out_off = 0; c->out_frames--; }
    }
    set_out(c, c->out_frames > 0);
}

// Parses the server frames in c's buffer; returns how many echoes it completed.
static long consume(conn_t *c) {
    size_t off = 0, n = c->rlen;
    long done = 0;
    unsigned char *b = c->rbuf;
    while (n - off >= 2) {
        unsigned b0 = b[off], b1 = b[off + 1];
        if (b1 & 0x80) die("%s", "a masked frame from the server");
        uint64_t len = b1;
        size_t h = 2;
        if (len == 126) {
            if (n - off < 4) break;
            len = ((uint64_t)b[off + 2] << 8) | b[off + 3];
            h = 4;
        } else if (len == 127) {
            if (n - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | b[off + 2 + i];
            h = 10;
        }
        if (len > (uint64_t)(n - off - h)) break;
        if (b0 == 0x82) {
            if (len != size || memcmp(b + off + h, payload, size) != 0) die("%s", "an echo differs from the message sent");
            done++;
        } else if (b0 == 0x88) {
            int code = len >= 2 ? (b[off + h] << 8) | b[off + h + 1] : -1;
            char s[16];
            snprintf(s, sizeof s, "%d", code);
            die("the server closed the connection (close frame, code %s)", s);
        } else if (b0 != 0x89 && b0 != 0x8A) {  // pings and pongs are not expected; ignored
            char s[8];
            snprintf(s, sizeof s, "%#04x", b0);
            die("unexpected frame: first byte %s", s);
        }
        off += h + (size_t)len;
    }
    if (off) {
        memmove(b, b + off, n - off);
        c->rlen = n - off;
    }
    return done;
}

static int connect_to(const char *host, const char *port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) die("getaddrinfo: %s", gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) die("connect: %s", strerror(errno));
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// The handshake, blocking; leftover bytes after the head go to c->rbuf.
static void handshake(conn_t *c, const char *host, const char *port, const char *path) {
    unsigned char raw[16], key[32], expect[32], digest[SHA_DIGEST_LENGTH];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) die("%s", "/dev/urandom");
    close(fd);
    EVP_EncodeBlock(key, raw, sizeof raw);
    char req[2048];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                       path, host, port, key);
    if (send(c->fd, req, (size_t)len, MSG_NOSIGNAL) != len) die("handshake send: %s", strerror(errno));
    char head[65536];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got == sizeof head - 1) die("%s", "handshake: response head over 64 KiB");
        ssize_t n = recv(c->fd, head + got, sizeof head - 1 - got, 0);
        if (n <= 0) die("handshake: %s", n == 0 ? "connection closed" : strerror(errno));
        got += (size_t)n;
        head[got] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - head) + 4;
    memcpy(c->rbuf, head + head_len, got - head_len);
    c->rlen = got - head_len;
    *end = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        char *eol = strstr(head, "\r\n");
        if (eol) *eol = 0;
        die("handshake: expected 101, got \"%s\"", head);
    }
    char concat[128];
    snprintf(concat, sizeof concat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((unsigned char *)concat, strlen(concat), digest);
    EVP_EncodeBlock(expect, digest, sizeof digest);
    int accept_ok = 0, upgrade_ok = 0;
    for (char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        char *colon = strchr(line, ':'), *eol = strstr(line, "\r\n");
        if (!colon || (eol && colon > eol)) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vlen = eol ? (size_t)(eol - v) : strlen(v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
        size_t nlen = (size_t)(colon - line);
        if (nlen == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0)
            accept_ok = vlen == strlen((char *)expect) && memcmp(v, expect, vlen) == 0;
        else if (nlen == 7 && strncasecmp(line, "Upgrade", 7) == 0)
            upgrade_ok = vlen == 9 && strncasecmp(v, "websocket", 9) == 0;
    }
    if (!accept_ok) die("%s", "handshake: Sec-WebSocket-Accept does not match the key");
    if (!upgrade_ok) die("%s", "handshake: no Upgrade: websocket in the 101");
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

int main(int argc, char **argv) {
    if (argc != 8) die("%s", "usage: websocket-load HOST PORT PATH CONNS SIZE WINDOW COUNTER_FILE");
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    long conns = atol(argv[4]), window = atol(argv[6]);
    size = (size_t)atol(argv[5]);
    if (conns < 1 || window < 1) die("%s", "CONNS and WINDOW must be at least 1");

    int cfd = open(argv[7], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (cfd < 0 || ftruncate(cfd, 64) < 0) die("counter file: %s", strerror(errno));
    counter = mmap(NULL, 64, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    if (counter == MAP_FAILED) die("mmap: %s", strerror(errno));

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    // The frame: FIN + binary, masked with one random key; the payload random.
    payload = malloc(size ? size : 1);
    unsigned char mask[4];
    int ufd = open("/dev/urandom", O_RDONLY);
    if (ufd < 0 || read(ufd, mask, 4) != 4 || (size && read(ufd, payload, size) != (ssize_t)size)) die("%s", "/dev/urandom");
    close(ufd);
    frame = malloc(size + 14);
    size_t h = 0;
    frame[h++] = 0x82;
    if (size < 126) frame[h++] = 0x80 | (unsigned char)size;
    else if (size < 65536) { frame[h++] = 0x80 | 126; frame[h++] = (unsigned char)(size >> 8); frame[h++] = (unsigned char)size; }
    else { frame[h++] = 0x80 | 127; for (int i = 7; i >= 0; i--) frame[h++] = (unsigned char)((uint64_t)size >> (8 * i)); }
    memcpy(frame + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < size; i++) frame[h + i] = payload[i] ^ mask[i & 3];
    frame_len = h + size;

    size_t rcap = (size_t)window * (size + 14) + 65536;
    conn_t *cs = calloc((size_t)conns, sizeof *cs);
    epfd = epoll_create1(0);
    for (long i = 0; i < conns; i++) {
        conn_t *c = &cs[i];
        c->rbuf = malloc(rcap);
        c->fd = connect_to(host, port);
        handshake(c, host, port, path);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    }
    uint64_t received = 0, sent = 0;
    for (long i = 0; i < conns; i++) {
        if (consume(&cs[i]) != 0) die("%s", "an echo before any message");
        cs[i].out_frames = window;
        cs[i].in_flight = window;
        sent += (uint64_t)window;
        flush(&cs[i]);
    }
    __atomic_store_n(&counter[0], 1, __ATOMIC_RELEASE);

    struct epoll_event events[256];
    double last_echo = now(), drain_deadline = 0;
    int stopping = 0;
    for (;;) {
        if (stop_requested && !stopping) { stopping = 1; drain_deadline = now() + 10; }
        if (stopping && (received == sent || now() > drain_deadline)) break;
        int n = epoll_wait(epfd, events, 256, stopping ? 200 : 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        if (n == 0) {
            if (!stopping && now() - last_echo > 10) die("%s", "no echo for 10 s");
            continue;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT) flush(c);
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = recv(c->fd, c->rbuf + c->rlen, rcap - c->rlen, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                die("recv: %s", strerror(errno));
            }
            if (r == 0) die("%s", "the server ended a connection during the load");
            c->rlen += (size_t)r;
            long done = consume(c);
            if (done) {
                received += (uint64_t)done;
                c->in_flight -= done;
                last_echo = now();
                __atomic_store_n(&counter[1], received, __ATOMIC_RELAXED);
                if (!stopping) {
                    c->out_frames += done;
                    c->in_flight += done;
                    sent += (uint64_t)done;
                    flush(c);
                }
            }
        }
    }
    if (received != sent) {
        char s[64];
        snprintf(s, sizeof s, "%llu", (unsigned long long)(sent - received));
        die("%s echoes still missing 10 s after the stop", s);
    }
    // Close handshakes: a close frame (1000, masked) on every connection, then read to the end.
    unsigned char close_frame[8] = {0x88, 0x82, mask[0], mask[1], mask[2], mask[3],
                                    (unsigned char)(0x03 ^ mask[0]), (unsigned char)(0xE8 ^ mask[1])};
    for (long i = 0; i < conns; i++) {
        int fd = cs[i].fd;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (send(fd, close_frame, sizeof close_frame, MSG_NOSIGNAL) == (ssize_t)sizeof close_frame) {
            char sink[65536];
            while (recv(fd, sink, sizeof sink, 0) > 0) {}
        }
        close(fd);
    }
    __atomic_store_n(&counter[0], 2, __ATOMIC_RELEASE);
    return 0;
}
