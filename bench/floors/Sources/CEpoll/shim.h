// epoll and accept4 for epoll-relay: Swift's Glibc module exports neither (<sys/epoll.h> is not
// in it, and accept4 is a GNU extension its headers hide). Declarations only, nothing to link:
// both live in libc.
#ifndef CEPOLL_SHIM_H
#define CEPOLL_SHIM_H

#include <sys/epoll.h>
#include <sys/socket.h>

extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

#endif
