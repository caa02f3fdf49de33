// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseJOSE
import GatehouseTestSupport
import NIOCore
import Synchronization
import Testing

/// A real nginx (Debian's package) in front of `gatehouse echo`, asking the gateway's
/// `/auth/verify` with `auth_request` and passing the identity on with `auth_request_set` — the
/// configuration docs/forward-auth.md shows.
@Suite("Forward-auth behind a real nginx")
struct ForwardAuthNginxTests {
    /// Runs nginx with `server` as its only server block; stops it when `body` returns.
    static func withNginx(_ server: String, _ body: () throws -> Void) throws {
        let directory = NSTemporaryDirectory() + "gatehouse-nginx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        // Workers run as nobody when nginx starts as root: they need to write their temp files.
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory + "/tmp")
        let temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map { "\($0)_temp_path \(directory)/tmp/\($0);" }.joined(separator: " ")
        let conf = """
            worker_processes 1;
            daemon off;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log;
            events { worker_connections 64; }
            http {
                access_log off;
                \(temp)
                \(server)
            }
            """
        try conf.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        nginx.arguments = ["-c", directory + "/nginx.conf", "-p", directory]
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        defer {
            nginx.terminate()
            nginx.waitUntilExit()
        }
        // Ready once it accepts connections.
        let port = Int(server.firstMatch(of: /listen 127\.0\.0\.1:(\d+)/)!.1)!
        let deadline = Date().addingTimeInterval(5)
        while (try? RawHTTPClient(port: port, timeoutSeconds: 1)) == nil, Date() < deadline { usleep(20_000) }
        try body()
    }

    @Test("auth_request + auth_request_set: the identity reaches the upstream; 401 and 403 stop at nginx")
    func nginxAuthRequest() async throws {
        try await withLiveGateway { live in
            let port = try TestPostgres.freePort()
            let echo = live.echo.localAddress!.port!
            let verify = "http://127.0.0.1:\(live.port)/auth/verify"
            let server = """
                server {
                    listen 127.0.0.1:\(port);
                    location = /_auth {
                        internal;
                        proxy_pass \(verify);
                        proxy_pass_request_body off;
                        proxy_set_header Content-Length "";
                        proxy_set_header X-Forwarded-Method $request_method;
                    }
                    location = /_auth_admin {
                        internal;
                        proxy_pass \(verify)?any_role=admin;
                        proxy_pass_request_body off;
                        proxy_set_header Content-Length "";
                    }
                    location /app/ {
                        auth_request /_auth;
                        auth_request_set $user_id $upstream_http_x_user_id;
                        auth_request_set $user_role $upstream_http_x_user_role;
                        auth_request_set $user_scopes $upstream_http_x_user_scopes;
                        proxy_set_header X-User-Id $user_id;
                        proxy_set_header X-User-Role $user_role;
                        proxy_set_header X-User-Scopes $user_scopes;
                        proxy_pass http://127.0.0.1:\(echo);
                    }
                    location /admin/ {
                        auth_request /_auth_admin;
                        auth_request_set $user_id $upstream_http_x_user_id;
                        proxy_set_header X-User-Id $user_id;
                        proxy_pass http://127.0.0.1:\(echo);
                    }
                }
                """
            try Self.withNginx(server) {
                let token = try live.token()
                func get(_ path: String, _ headers: [(String, String)]) throws -> RawHTTPClient.Response {
                    try RawHTTPClient.request(port: port, "GET", path, headers: headers)
                }
                let before = live.echoConnections.value.load(ordering: .relaxed)

                // A valid token: the upstream sees the gateway's identity, not the client's claim.
                let ok = try get("/app/orders", [("Authorization", "Bearer \(token)"), ("X-User-Id", "root")])
                #expect(ok.status == 200)
                let seen = ok.json?["headers"] as? [String: [String]]
                #expect(seen?["x-user-id"] == ["7"])
                #expect(seen?["x-user-role"] == ["viewer"])
                #expect(seen?["x-user-scopes"] == ["content:read,profile:read"])
                #expect(live.echoConnections.value.load(ordering: .relaxed) == before + 1)

                // Refusals stop at nginx: nothing reaches the upstream.
                let missing = try get("/app/orders", [])
                #expect(missing.status == 401 && missing.header("WWW-Authenticate") == "Bearer")
                let bad = try get("/app/orders", [("Authorization", "Bearer \(token)x")])
                #expect(bad.status == 401 && bad.header("WWW-Authenticate")?.contains("invalid_token") == true)
                let expired = try get("/app/orders", [("Authorization", "Bearer \(try live.token(expiresIn: -3600))")])
                #expect(expired.status == 401)
                // any_role from the query: a viewer is forbidden, an admin passes.
                #expect(try get("/admin/users", [("Authorization", "Bearer \(token)")]).status == 403)
                #expect(live.echoConnections.value.load(ordering: .relaxed) == before + 1)
                let admin = try live.token(["roles": .array([.string("admin")])])
                #expect(try get("/admin/users", [("Authorization", "Bearer \(admin)")]).status == 200)

                // The access cookie: an unsafe method needs proof of origin, as on a route.
                let cookie = ("Cookie", "access_token=\(token)")
                #expect(try get("/app/orders", [cookie]).status == 200)
                let forged = try RawHTTPClient.request(port: port, "POST", "/app/orders", headers: [cookie])
                #expect(forged.status == 403)
                let fromScript = try RawHTTPClient.request(port: port, "DELETE", "/app/orders/1", headers: [cookie, ("X-Requested-With", "fetch")])
                #expect(fromScript.status == 200 && (fromScript.json?["headers"] as? [String: [String]])?["x-user-id"] == ["7"])
            }
        }
    }
}
