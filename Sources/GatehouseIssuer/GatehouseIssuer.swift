// SPDX-License-Identifier: Apache-2.0
//
// GatehouseIssuer: register, login, refresh (rotation, reuse detection), logout, /users/me, the
// JWKS and discovery documents, served on the gateway's listener. Built by the issuer issue on
// GatehouseJOSE (Signer), GatehousePassword (Argon2id) and GatehouseStore.
