// SPDX-License-Identifier: Apache-2.0
// The reference Argon2 library (Debian libargon2-dev).
#ifndef CGATEHOUSE_ARGON2_SHIM_H
#define CGATEHOUSE_ARGON2_SHIM_H
#include <argon2.h>
#endif
