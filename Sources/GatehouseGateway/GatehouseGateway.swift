// SPDX-License-Identifier: Apache-2.0
//
// GatehouseGateway: the SwiftNIO reverse proxy. It verifies bearer tokens with GatehouseJOSE's
// Verifier on the event loop (synchronous, lock-free), strips client identity headers, injects
// X-User-* and forwards on pooled upstream connections. Built by the gateway issue.
