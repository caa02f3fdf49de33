// SPDX-License-Identifier: Apache-2.0
// libpq (Debian libpq-dev); pkg-config adds -I/usr/include/postgresql.
#ifndef CGATEHOUSE_LIBPQ_SHIM_H
#define CGATEHOUSE_LIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
