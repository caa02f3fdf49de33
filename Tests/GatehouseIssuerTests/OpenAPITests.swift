// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing
import Yams

/// docs/openapi.yaml against the running server: every documented status of every operation is
/// produced by a real request, and every JSON body it documents is validated against its schema.
@Suite("docs/openapi.yaml")
struct OpenAPITests {
    static let specFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/openapi.yaml")

    /// Statuses documented but produced by other suites, which need a fault to provoke.
    static let elsewhere: [String: String] = [
        "503": "a full Argon2 queue (IssuerEndpointTests) and a database restart (DatabaseRestartTests)",
    ]

    @Test("every documented status is what the server answers, with a body of the documented shape")
    func conformance() async throws {
        let spec = try OpenAPISpec(Self.specFile)
        var options = Harness.Options()
        options.issuer = """
            revocation_secret: feed-secret-0123456789abcdef0123456789
            cookies: true
            allowed_origins: [https://app.example.com]
            login_limit: { failures: 3, window: 1m }
            """
        var tried: Set<String> = []
        try await Harness.with(.sqlite, options: options) { harness in
            let port = harness.port
            func send(_ method: String, _ path: String, _ headers: [(String, String)] = [], body: String? = nil) throws -> RawHTTPClient.Response {
                try RawHTTPClient.request(port: port, method, path, headers: headers, body: body.map { Array($0.utf8) } ?? [])
            }
            let json = [("Content-Type", "application/json")]
            func post(_ path: String, _ body: String, _ headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
                try send("POST", path, json + headers, body: body)
            }
            let password = "correct horse battery"
            let ann = try harness.register("ann@example.com", password: password)
            func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }
            let large = #"{"email":"x@example.com","password":""# + String(repeating: "a", count: 70_000) + #""}"#

            // One request per documented (method path status), in this order: the login limit's
            // 429 comes last, after the failures that count towards it.
            let recipes: [(String, () throws -> RawHTTPClient.Response)] = [
                ("post /auth/register 201", { try post("/auth/register", #"{"email":"bob@example.com","password":"\#(password)","name":null}"#) }),
                ("post /auth/register 400", { try post("/auth/register", "[]") }),
                ("post /auth/register 405", { try send("GET", "/auth/register") }),
                ("post /auth/register 409", { try post("/auth/register", #"{"email":"ann@example.com","password":"\#(password)"}"#) }),
                ("post /auth/register 413", { try post("/auth/register", large) }),
                ("post /auth/register 415", { try send("POST", "/auth/register", [("Content-Type", "text/plain")], body: "x") }),
                ("post /auth/register 422", { try post("/auth/register", #"{"email":"not an email","password":"\#(password)"}"#) }),
                ("post /auth/login 200", { try post("/auth/login", #"{"email":"ann@example.com","password":"\#(password)"}"#) }),
                ("post /auth/login 400", { try post("/auth/login", #"{"email":1,"password":"x"}"#) }),
                ("post /auth/login 413", { try post("/auth/login", large) }),
                ("post /auth/login 415", { try send("POST", "/auth/login", [], body: "{}") }),
                ("post /auth/login 422", { try post("/auth/login", #"{"email":"nope","password":"x"}"#) }),
                ("post /auth/refresh 200", { try post("/auth/refresh", #"{"refresh_token":"\#(ann.refresh)"}"#) }),
                ("post /auth/refresh 400", { try post("/auth/refresh", #"{"refresh_token":5}"#) }),
                ("post /auth/refresh 401", { try post("/auth/refresh", #"{"refresh_token":"a.b.c"}"#) }),
                ("post /auth/refresh 403", { try send("POST", "/auth/refresh", [("Cookie", "refresh_token=\(ann.refresh)")]) }),
                ("post /auth/refresh 415", { try send("POST", "/auth/refresh", [("Content-Type", "text/plain")], body: "x") }),
                ("post /auth/password 400", { try post("/auth/password", "{}", bearer(ann.access)) }),
                ("post /auth/password 401", { try post("/auth/password", #"{"current_password":"x","new_password":"yyyyyyyyyy"}"#) }),
                ("post /auth/password 403", {
                    try post("/auth/password", #"{"current_password":"x","new_password":"yyyyyyyyyy"}"#, [("Cookie", "access_token=\(ann.access)")])
                }),
                ("post /auth/password 415", { try send("POST", "/auth/password", bearer(ann.access), body: "{}") }),
                ("post /auth/password 422", { try post("/auth/password", #"{"current_password":"\#(password)","new_password":"short"}"#, bearer(ann.access)) }),
                ("post /auth/password 204", {
                    try post("/auth/password", #"{"current_password":"\#(password)","new_password":"\#(password)!"}"#, bearer(ann.access))
                }),
                ("get /users/me 200", { try send("GET", "/users/me", bearer(ann.access)) }),
                ("get /users/me 401", { try send("GET", "/users/me") }),
                ("get /users/me 405", { try send("POST", "/users/me", json, body: "{}") }),
                ("get /.well-known/jwks.json 200", { try send("GET", "/.well-known/jwks.json") }),
                ("get /.well-known/openid-configuration 200", { try send("GET", "/.well-known/openid-configuration") }),
                ("get /auth/verify 200", { try send("GET", "/auth/verify", bearer(ann.access)) }),
                ("get /auth/verify 400", { try send("GET", "/auth/verify", bearer(ann.access) + bearer(ann.access)) }),
                ("get /auth/verify 401", { try send("GET", "/auth/verify") }),
                ("get /auth/verify 403", { try send("GET", "/auth/verify?any_role=admin", bearer(ann.access)) }),
                ("post /auth/logout 400", { try post("/auth/logout", "{}") }),
                ("post /auth/logout 401", { try post("/auth/logout", #"{"refresh_token":"a.b.c"}"#) }),
                ("post /auth/logout 403", { try send("POST", "/auth/logout", [("Cookie", "refresh_token=\(ann.refresh)")]) }),
                ("post /auth/logout 415", { try send("POST", "/auth/logout", [("Content-Type", "text/plain")], body: "x") }),
                ("post /auth/logout 204", { try post("/auth/logout", #"{"refresh_token":"\#(ann.refresh)"}"#) }),
                ("get /auth/revocations 200", { try send("GET", "/auth/revocations?since=0", bearer("feed-secret-0123456789abcdef0123456789")) }),
                ("get /auth/revocations 400", { try send("GET", "/auth/revocations?since=x", bearer("feed-secret-0123456789abcdef0123456789")) }),
                ("get /auth/revocations 401", { try send("GET", "/auth/revocations", bearer("wrong")) }),
                ("get /auth/revocations 405", { try send("POST", "/auth/revocations", json, body: "{}") }),
                ("post /auth/login 401", { try post("/auth/login", #"{"email":"ann@example.com","password":"wrong password"}"#) }),
                ("post /auth/password 429", {
                    let carol = try harness.register("carol@example.com", password: password)
                    let wrong = #"{"current_password":"wrong password","new_password":"yyyyyyyyyy"}"#
                    for _ in 0..<3 { _ = try post("/auth/password", wrong, bearer(carol.access)) }
                    return try post("/auth/password", wrong, bearer(carol.access))
                }),
                ("post /auth/login 429", {
                    for _ in 0..<3 { _ = try post("/auth/login", #"{"email":"ann@example.com","password":"wrong password"}"#) }
                    return try post("/auth/login", #"{"email":"ann@example.com","password":"wrong password"}"#)
                }),
                // The failures above were all this client address's: it may not register either.
                ("post /auth/register 429", { try post("/auth/register", #"{"email":"dan@example.com","password":"\#(password)"}"#) }),
            ]
            for (operation, request) in recipes {
                let parts = operation.split(separator: " ").map(String.init)
                tried.insert(operation)
                guard let documented = spec.response(method: parts[0], path: parts[1], status: parts[2]) else {
                    Issue.record("\(operation) is exercised but not documented")
                    continue
                }
                let response = try request()
                #expect(response.status == Int(parts[2]), "\(operation): \(response.status) \(response.text)")
                if let schema = documented.jsonSchema {
                    let body = try? JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed])
                    let problems = body.map { spec.validate($0, against: schema, at: "body") } ?? ["not JSON: \(response.text)"]
                    #expect(problems.isEmpty, "\(operation): \(problems)")
                } else {
                    #expect(response.body.isEmpty, "\(operation) documents no body")
                }
                for header in documented.headers {
                    #expect(response.header(header) != nil, "\(operation): no \(header) header")
                }
            }
        }
        // Without a revocation_secret the feed does not exist.
        try await Harness.with(.sqlite) { harness in
            let absent = try RawHTTPClient.request(port: harness.port, "GET", "/auth/revocations", headers: [("Authorization", "Bearer x")])
            #expect(absent.status == 404)
            tried.insert("get /auth/revocations 404")
        }
        let untested = spec.operations.filter { !tried.contains($0) && Self.elsewhere[String($0.split(separator: " ")[2])] == nil }
        #expect(untested.isEmpty, "documented but never produced here: \(untested.sorted())")
    }
}

/// The parts of an OpenAPI 3.1 document the test needs, and a JSON Schema check for the subset
/// the document uses (type, required, properties, items, enum, allOf, $ref).
struct OpenAPISpec {
    let root: [String: Any]

    struct Response {
        let jsonSchema: [String: Any]?
        let headers: [String]
    }

    init(_ file: URL) throws {
        let loaded = try Yams.load(yaml: String(contentsOf: file, encoding: .utf8))
        self.root = loaded as? [String: Any] ?? [:]
    }

    /// "method path status" for every documented response.
    var operations: [String] {
        var all: [String] = []
        for (path, item) in self.root["paths"] as? [String: Any] ?? [:] {
            for (method, operation) in item as? [String: Any] ?? [:] {
                for status in ((operation as? [String: Any])?["responses"] as? [String: Any] ?? [:]).keys {
                    all.append("\(method) \(path) \(status)")
                }
            }
        }
        return all
    }

    func response(method: String, path: String, status: String) -> Response? {
        guard let operation = ((self.root["paths"] as? [String: Any])?[path] as? [String: Any])?[method] as? [String: Any],
            let raw = (operation["responses"] as? [String: Any])?[status] as? [String: Any]
        else { return nil }
        let response = self.resolve(raw)
        let schema = (((response["content"] as? [String: Any])?["application/json"]) as? [String: Any])?["schema"] as? [String: Any]
        let headers = (response["headers"] as? [String: Any] ?? [:]).keys.filter { !$0.hasPrefix("X-User") }
        return Response(jsonSchema: schema, headers: Array(headers))
    }

    /// Follows a local `$ref` (`#/components/...`).
    func resolve(_ node: [String: Any]) -> [String: Any] {
        guard let reference = node["$ref"] as? String, reference.hasPrefix("#/") else { return node }
        var current: Any = self.root
        for part in reference.dropFirst(2).split(separator: "/") { current = (current as? [String: Any])?[String(part)] ?? [:] }
        return self.resolve(current as? [String: Any] ?? [:])
    }

    /// What is wrong with `value` under `schema`; empty when it conforms.
    func validate(_ value: Any, against raw: [String: Any], at path: String) -> [String] {
        let schema = self.resolve(raw)
        var problems: [String] = []
        for part in schema["allOf"] as? [[String: Any]] ?? [] { problems += self.validate(value, against: part, at: path) }
        if let types = schema["type"].map({ $0 as? [String] ?? [$0 as? String ?? ""] }), !types.contains(where: { Self.isType(value, $0) }) {
            return problems + ["\(path): \(value) is not \(types.joined(separator: " or "))"]
        }
        if let allowed = schema["enum"] as? [String], !allowed.contains(value as? String ?? "\u{0}") {
            problems.append("\(path): \(value) is not one of \(allowed)")
        }
        if let object = value as? [String: Any] {
            for name in schema["required"] as? [String] ?? [] where object[name] == nil { problems.append("\(path).\(name) is missing") }
            for (name, property) in schema["properties"] as? [String: Any] ?? [:] {
                if let member = object[name], let property = property as? [String: Any] {
                    problems += self.validate(member, against: property, at: "\(path).\(name)")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (index, item) in array.enumerated() { problems += self.validate(item, against: items, at: "\(path)[\(index)]") }
        }
        return problems
    }

    /// JSON true/false: an NSNumber of type char (on Linux any NSNumber 0 or 1 also casts to Bool).
    static func isBoolean(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    static func isType(_ value: Any, _ type: String) -> Bool {
        switch type {
        case "null": return value is NSNull
        case "string": return value is String
        case "boolean": return Self.isBoolean(value)
        case "integer": return !Self.isBoolean(value) && (value as? NSNumber).map { $0.doubleValue == $0.doubleValue.rounded() } ?? false
        case "number": return !Self.isBoolean(value) && value is NSNumber
        case "array": return value is [Any]
        case "object": return value is [String: Any]
        default: return false
        }
    }
}
