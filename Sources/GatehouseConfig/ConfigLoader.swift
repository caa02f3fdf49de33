// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseJOSE
import Yams

extension GatewayConfig {
    /// Reads and validates the file at `path`. Relative paths inside are relative to its folder.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> GatewayConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(file: path, line: nil, key: "", message: "cannot read the file (\(error.localizedDescription))")
        }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL
        return try self.parse(text, file: path, baseDirectory: absolute.deletingLastPathComponent().path, environment: environment)
    }

    /// Validates YAML text as a gateway configuration.
    public static func parse(
        _ text: String, file: String, baseDirectory: String, environment: [String: String] = [:]
    ) throws(ConfigError) -> GatewayConfig {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
            throw ConfigError(file: file, line: context.mark.line, key: duplicates.joined(separator: ", "), message: "appears twice in one mapping")
        } catch {
            throw ConfigError(file: file, line: Self.line(of: error), key: "", message: "not valid YAML (\(error))")
        }
        guard let root, case .mapping(let mapping) = root else {
            throw ConfigError(file: file, line: root?.mark?.line, key: "", message: "the file must be a mapping of keys")
        }
        var top = try Section(file: file, path: "", mapping: mapping, line: root.mark?.line, environment: environment)
        let resolve = { (path: String) in Self.absolute(path, relativeTo: baseDirectory) }

        let listenText = try top.string("listen", default: "0.0.0.0:8080")
        guard let listen = ListenAddress(listenText) else { throw top.error(at: mapping["listen"], "listen", "\"\(listenText)\" is not host:port") }
        let adminText = try top.string("admin_listen", default: "127.0.0.1:9901")
        guard let admin = ListenAddress(adminText) else { throw top.error(at: mapping["admin_listen"], "admin_listen", "\"\(adminText)\" is not host:port") }
        let formatText = try top.string("log_format", default: "auto")
        guard let logFormat = LogFormat(rawValue: formatText) else {
            throw top.error(at: mapping["log_format"], "log_format", "\"\(formatText)\" is not auto, text or json")
        }
        let trustedProxies = try top.strings("trusted_proxies") ?? []
        do { _ = try TrustedProxies(trustedProxies) } catch {
            throw top.error(at: mapping["trusted_proxies"], "trusted_proxies", "\"\(error.entry)\" is not an IP address or CIDR block")
        }

        var tls: TLSFiles? = nil
        if var section = try top.section("tls") {
            tls = try Self.parseTLSFiles(&section, resolve: resolve)
            try section.finish()
        }

        var issuer: IssuerConfig? = nil
        if var section = try top.section("issuer") {
            issuer = try Self.parseIssuer(&section, resolve: resolve)
            try section.finish()
        }
        var verify: VerifyConfig
        if var section = try top.section("verify") {
            verify = try Self.parseVerify(&section, issuer: issuer, resolve: resolve)
            try section.finish()
        } else {
            verify = try Self.defaultVerify(issuer: issuer, file: file)
        }
        if issuer?.cookies == true, verify.cookie == nil { verify.cookie = "access_token" }

        var routes: [RouteConfig] = []
        var prefixes: [String: Int] = [:]
        for var section in try top.sections("routes") ?? [] {
            let route = try Self.parseRoute(&section, resolve: resolve)
            if let first = prefixes[route.prefix] {
                throw ConfigError(file: file, line: section.line, key: "\(section.path).prefix", message: "\"\(route.prefix)\" is already the prefix of routes[\(first)]")
            }
            prefixes[route.prefix] = routes.count
            if route.auth != .public, verify.providers.isEmpty {
                throw ConfigError(file: file, line: section.line, key: section.path, message: "needs tokens verified, but neither verify nor an enabled issuer is configured")
            }
            try section.finish()
            routes.append(route)
        }

        let config = GatewayConfig(
            source: file, listen: listen, adminListen: admin,
            shutdownGrace: try top.duration("shutdown_grace", default: .seconds(30)),
            threads: try top.int("threads", default: 0, range: 0...1024),
            maxConnections: try top.int("max_connections", default: 16384, range: 1...1_000_000),
            headerTimeout: try top.duration("header_timeout", default: .seconds(10)),
            idleTimeout: try top.duration("idle_timeout", default: .seconds(60)),
            trustedProxies: trustedProxies, logFormat: logFormat, accessLog: try top.bool("access_log", default: true),
            tls: tls, issuer: issuer, verify: verify, routes: routes, fileReferences: top.fileReferences.locations
        )
        try top.finish()
        return config
    }

    // MARK: Sections

    private static func parseIssuer(_ section: inout Section, resolve: (String) -> String) throws(ConfigError) -> IssuerConfig? {
        guard try section.bool("enabled", default: true) else {
            // A pure sidecar: the other issuer keys are neither needed nor read.
            for (key, _) in section.mapping { _ = section.rawNode(key.string ?? "") }
            return nil
        }
        guard var signing = try section.section("signing") else {
            throw ConfigError(file: section.file, line: section.line, key: section.keyPath("signing"), message: "is required when the issuer is enabled")
        }
        let algorithmText = try signing.string("alg", default: "ES256")
        guard let algorithm = Algorithm(rawValue: algorithmText), !algorithm.isHMAC else {
            throw signing.error(at: signing.mapping["alg"], "alg", "\"\(algorithmText)\" is not an asymmetric JWS algorithm (RS*, PS*, ES*, EdDSA)")
        }
        let keyFile = resolve(try signing.requiredString("key_file"))
        signing.noteFile("key_file", keyFile)
        let previous = (try signing.strings("previous_key_files") ?? []).map(resolve)
        for path in previous { signing.noteFile("previous_key_files", path) }
        try signing.finish()

        var limit = try section.section("login_limit")
        let failures = try limit?.int("failures", default: 10, range: 1...1_000_000) ?? 10
        let window = try limit?.duration("window", default: .seconds(900)) ?? .seconds(900)
        try limit?.finish()

        var argon = try section.section("argon2")
        let argon2 = IssuerConfig.Argon2(
            memoryKiB: try argon?.int("memory_kib", default: 19456, range: 8...4_194_304) ?? 19456,
            iterations: try argon?.int("iterations", default: 2, range: 1...100) ?? 2,
            parallelism: try argon?.int("parallelism", default: 1, range: 1...64) ?? 1
        )
        try argon?.finish()

        var database = try section.string("database", default: "sqlite:gatehouse.db")
        if database.hasPrefix("sqlite:") { database = "sqlite:" + resolve(String(database.dropFirst("sqlite:".count))) }

        let issuerURL = try section.requiredString("issuer")
        guard issuerURL.hasPrefix("https://") || issuerURL.hasPrefix("http://") else {
            throw section.error(at: section.mapping["issuer"], "issuer", "\"\(issuerURL)\" must be an http(s) URL")
        }
        let refreshSecret = try section.string("refresh_secret")
        if let refreshSecret, refreshSecret.utf8.count < 32 {
            throw section.error(at: section.mapping["refresh_secret"], "refresh_secret", "must be at least 32 bytes")
        }
        let previousRefreshSecrets = try section.strings("previous_refresh_secrets") ?? []
        if previousRefreshSecrets.contains(where: { $0.utf8.count < 32 }) {
            throw section.error(at: section.mapping["previous_refresh_secrets"], "previous_refresh_secrets", "each must be at least 32 bytes")
        }
        let revocationSecret = try section.string("revocation_secret")
        if let revocationSecret, revocationSecret.utf8.count < 32 {
            throw section.error(at: section.mapping["revocation_secret"], "revocation_secret", "must be at least 32 bytes")
        }
        return IssuerConfig(
            issuer: issuerURL,
            audience: try section.string("audience", default: "api"),
            accessTokenTTL: try section.duration("access_token_ttl", default: .seconds(1800)),
            refreshTokenTTL: try section.duration("refresh_token_ttl", default: .seconds(7 * 86400)),
            refreshReuseInterval: try section.duration("refresh_reuse_interval", default: .seconds(10)),
            signing: .init(algorithm: algorithm, keyFile: keyFile, previousKeyFiles: previous),
            loginLimitFailures: failures, loginLimitWindow: window, database: database,
            defaultRole: try section.string("default_role", default: "viewer"), argon2: argon2,
            passwordMinLength: try section.int("password_min_length", default: 8, range: 1...1024),
            refreshSecret: refreshSecret,
            previousRefreshSecrets: previousRefreshSecrets,
            hashQueue: try section.int("hash_queue", default: 64, range: 1...100_000),
            autoMigrate: try section.bool("auto_migrate", default: true),
            cookies: try section.bool("cookies", default: false),
            allowedOrigins: try section.strings("allowed_origins") ?? [],
            revocationSecret: revocationSecret
        )
    }

    /// Without a `verify` section, the gateway verifies the local issuer's tokens.
    private static func defaultVerify(issuer: IssuerConfig?, file: String) throws(ConfigError) -> VerifyConfig {
        var providers: [ProviderConfig] = []
        if let issuer {
            providers.append(ProviderConfig(
                issuer: issuer.issuer, audience: issuer.audience, algorithms: [issuer.signing.algorithm], keys: .local,
                type: .required("at+jwt"), leeway: .seconds(30)
            ))
        }
        return VerifyConfig(
            providers: providers, tokenCacheSize: 100_000, cookie: nil, allowedOrigins: [], jwksStartupTimeout: .seconds(10),
            maxTokenBytes: VerificationPolicy.defaultMaximumTokenBytes, revocation: .off
        )
    }

    private static func parseVerify(_ section: inout Section, issuer: IssuerConfig?, resolve: (String) -> String) throws(ConfigError) -> VerifyConfig {
        var providers: [ProviderConfig] = []
        if let list = try section.sections("providers") {
            for provider in ["issuer", "audience", "algorithms", "keys", "typ", "leeway"] where section.has(provider) {
                throw section.error(at: section.mapping[provider], provider, "belongs inside each of verify.providers when providers are listed")
            }
            for var entry in list {
                providers.append(try Self.parseProvider(&entry, issuer: issuer, resolve: resolve))
                try entry.finish()
            }
            var seen: Set<String> = []
            for (index, provider) in providers.enumerated() where !seen.insert(provider.issuer).inserted {
                throw ConfigError(file: section.file, line: list[index].line, key: "\(list[index].path).issuer", message: "two providers have the same issuer")
            }
        } else {
            providers.append(try Self.parseProvider(&section, issuer: issuer, resolve: resolve))
        }
        var cache = try section.section("token_cache")
        let cacheSize = try cache?.int("size", default: 100_000, range: 0...100_000_000) ?? 100_000
        try cache?.finish()

        var feed = VerifyConfig.RevocationFeed.off
        if var revocation = try section.section("revocation") {
            switch try revocation.string("feed", default: "off") {
            case "off": break
            case "postgres": feed = .postgres(database: try revocation.requiredString("database"))
            case "poll":
                let (url, caFile) = try Self.parseURLWithTrust(&revocation, urlKey: "url", resolve: resolve)
                feed = .poll(
                    url: url, secret: try revocation.requiredString("secret"),
                    interval: try revocation.duration("interval", default: .milliseconds(500)), caFile: caFile
                )
            case let other: throw revocation.error(at: revocation.mapping["feed"], "feed", "\"\(other)\" is not off, postgres or poll")
            }
            try revocation.finish()
        }
        return VerifyConfig(
            providers: providers, tokenCacheSize: cacheSize, cookie: try section.string("cookie"),
            allowedOrigins: try section.strings("allowed_origins") ?? [],
            jwksStartupTimeout: try section.duration("jwks_startup_timeout", default: .seconds(10)),
            maxTokenBytes: try section.int("max_token_bytes", default: VerificationPolicy.defaultMaximumTokenBytes, range: 256...1_048_576),
            revocation: feed
        )
    }

    private static func parseProvider(_ section: inout Section, issuer: IssuerConfig?, resolve: (String) -> String) throws(ConfigError) -> ProviderConfig {
        let names = try section.strings("algorithms") ?? [issuer?.signing.algorithm.rawValue ?? "ES256"]
        var algorithms: Set<Algorithm> = []
        for name in names {
            guard let algorithm = Algorithm(rawValue: name) else {
                let hint = name.lowercased() == "none" ? "\"none\" is never allowed" : "\"\(name)\" is not a JWS algorithm Gatehouse supports"
                throw section.error(at: section.mapping["algorithms"], "algorithms", hint)
            }
            algorithms.insert(algorithm)
        }
        guard !algorithms.isEmpty else { throw section.error(at: section.mapping["algorithms"], "algorithms", "must name at least one algorithm") }

        let keys: KeySource
        let keysNode = section.mapping["keys"]
        if case .scalar = keysNode, let text = try section.string("keys") {
            guard text == "local" else { throw section.error(at: keysNode, "keys", "\"\(text)\" is not local or a mapping") }
            guard issuer != nil else { throw section.error(at: keysNode, "keys", "local needs the issuer enabled") }
            keys = .local
        } else if var source = try section.section("keys") {
            keys = try Self.parseKeySource(&source, algorithms: algorithms, resolve: resolve)
            try source.finish()
        } else if issuer != nil {
            keys = .local
        } else {
            throw ConfigError(file: section.file, line: section.line, key: section.keyPath("keys"), message: "is required when the issuer is off")
        }

        let typ = try section.string("typ", default: "at+jwt")
        let issuerName = try section.string("issuer") ?? issuer?.issuer
        guard let issuerName else {
            throw ConfigError(file: section.file, line: section.line, key: section.keyPath("issuer"), message: "is required (the exact iss of accepted tokens)")
        }
        return ProviderConfig(
            issuer: issuerName, audience: try section.string("audience") ?? issuer?.audience, algorithms: algorithms, keys: keys,
            type: typ == "any" ? .any : .required(typ), leeway: try section.duration("leeway", default: .seconds(30))
        )
    }

    /// An http(s) URL under `urlKey` and the optional `ca_file` beside it: its trust roots, for an
    /// https URL only, and readable.
    private static func parseURLWithTrust(
        _ section: inout Section, urlKey: String, resolve: (String) -> String
    ) throws(ConfigError) -> (url: String, caFile: String?) {
        let url = try section.requiredString(urlKey)
        guard UpstreamURL(url) != nil else { throw section.error(at: section.mapping[urlKey], urlKey, "\"\(url)\" is not an http(s) URL") }
        let caFile = try section.string("ca_file").map(resolve)
        if caFile != nil, !url.lowercased().hasPrefix("https://") {
            throw section.error(at: section.mapping["ca_file"], "ca_file", "ca_file applies to an https \(urlKey) only")
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw section.error(at: section.mapping["ca_file"], "ca_file", "cannot read \(caFile)")
        }
        return (url, caFile)
    }

    private static func parseKeySource(_ source: inout Section, algorithms: Set<Algorithm>, resolve: (String) -> String) throws(ConfigError) -> KeySource {
        let forms = ["jwks_url", "jwks_file", "public_key_file", "secret"].filter(source.has)
        guard forms.count == 1 else {
            throw ConfigError(file: source.file, line: source.line, key: source.path, message: "needs exactly one of jwks_url, jwks_file, public_key_file or secret")
        }
        switch forms[0] {
        case "jwks_url":
            let (url, caFile) = try Self.parseURLWithTrust(&source, urlKey: "jwks_url", resolve: resolve)
            return .jwksURL(url, caFile: caFile)
        case "jwks_file":
            let path = resolve(try source.requiredString("jwks_file"))
            source.noteFile("jwks_file", path)
            return .jwksFile(path)
        case "public_key_file":
            let path = resolve(try source.requiredString("public_key_file"))
            source.noteFile("public_key_file", path)
            return .publicKeyFile(path: path, keyID: try source.string("kid"))
        default:
            let secret = try source.requiredString("secret")
            guard secret.utf8.count >= 32 else { throw source.error(at: source.mapping["secret"], "secret", "HMAC secrets need at least 32 bytes") }
            guard algorithms.contains(where: \.isHMAC) else {
                throw source.error(at: source.mapping["secret"], "secret", "a secret needs an HS256/384/512 algorithm in algorithms")
            }
            return .secret(Array(secret.utf8), keyID: try source.requiredString("kid"))
        }
    }

    /// `{cert_file, key_file}`: both required, both readable.
    private static func parseTLSFiles(_ section: inout Section, resolve: (String) -> String) throws(ConfigError) -> TLSFiles {
        var files: [String] = []
        for key in ["cert_file", "key_file"] {
            let path = resolve(try section.requiredString(key))
            guard FileManager.default.isReadableFile(atPath: path) else { throw section.error(at: section.mapping[key], key, "cannot read \(path)") }
            files.append(path)
        }
        return TLSFiles(certificateFile: files[0], keyFile: files[1])
    }

    private static func parseRoute(_ section: inout Section, resolve: (String) -> String) throws(ConfigError) -> RouteConfig {
        let prefix = try section.requiredString("prefix")
        guard prefix.hasPrefix("/") else { throw section.error(at: section.mapping["prefix"], "prefix", "\"\(prefix)\" must start with /") }
        let upstreamText = try section.requiredString("upstream")
        guard let upstream = UpstreamURL(upstreamText) else {
            throw section.error(at: section.mapping["upstream"], "upstream", "\"\(upstreamText)\" is not an http(s)://host[:port][/path] URL")
        }
        let authText = try section.string("auth", default: "required")
        guard let auth = RouteConfig.Auth(rawValue: authText) else {
            throw section.error(at: section.mapping["auth"], "auth", "\"\(authText)\" is not required, optional or public")
        }
        let anyRole = try section.strings("any_role") ?? []
        let allScopes = try section.strings("all_scopes") ?? []
        if auth == .public, !anyRole.isEmpty || !allScopes.isEmpty {
            throw ConfigError(file: section.file, line: section.line, key: section.path, message: "a public route cannot require roles or scopes")
        }
        return RouteConfig(
            prefix: prefix, upstream: upstream, auth: auth, anyRole: anyRole, allScopes: allScopes,
            timeout: try section.duration("timeout", default: .seconds(30)),
            connectTimeout: try section.duration("connect_timeout", default: .seconds(5)),
            allowPreflight: try section.bool("allow_preflight", default: false),
            stripPrefix: try section.bool("strip_prefix", default: false),
            preserveHost: try section.bool("preserve_host", default: false),
            forwardToken: try section.bool("forward_token", default: true),
            keepSemicolons: try Self.keepOrRefuse("semicolons", in: &section),
            keepEncodedSlashes: try Self.keepOrRefuse("encoded_slashes", in: &section),
            upstreamTLS: try Self.parseUpstreamTLS(&section, upstream: upstream, resolve: resolve),
            websocketIdleTimeout: try Self.positiveDuration("websocket_idle_timeout", default: .seconds(3600), in: &section),
            tokenParameter: try Self.parseTokenParameter(&section),
            websocketOutlivesToken: try section.bool("websocket_outlive_token", default: false)
        )
    }

    /// A duration that must be more than zero (zero would end every tunnel at once).
    private static func positiveDuration(_ key: String, default value: Duration, in section: inout Section) throws(ConfigError) -> Duration {
        let duration = try section.duration(key, default: value)
        guard duration > .zero else { throw section.error(at: section.mapping[key], key, "must be more than 0s") }
        return duration
    }

    /// `token_param`: a query parameter's name, as it appears in a URL (no percent-encoding).
    private static func parseTokenParameter(_ section: inout Section) throws(ConfigError) -> String? {
        guard let name = try section.string("token_param") else { return nil }
        let allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
        guard !name.isEmpty, name.allSatisfy({ allowed.contains($0) }) else {
            throw section.error(at: section.mapping["token_param"], "token_param", "\"\(name)\" is not a plain query parameter name (letters, digits, - . _ ~)")
        }
        return name
    }

    /// `keep` or `refuse` (the default): whether a route lets a path hazard through.
    private static func keepOrRefuse(_ key: String, in section: inout Section) throws(ConfigError) -> Bool {
        let text = try section.string(key, default: "refuse")
        guard text == "keep" || text == "refuse" else { throw section.error(at: section.mapping[key], key, "\"\(text)\" is not keep or refuse") }
        return text == "keep"
    }

    /// `upstream_tls: {ca_file, cert_file, key_file}`, every key optional, for https upstreams only.
    private static func parseUpstreamTLS(_ route: inout Section, upstream: UpstreamURL, resolve: (String) -> String) throws(ConfigError) -> UpstreamTLSConfig? {
        guard var section = try route.section("upstream_tls") else { return nil }
        guard upstream.scheme == "https" else {
            throw route.error(at: route.mapping["upstream_tls"], "upstream_tls", "applies to an https upstream only")
        }
        var config = UpstreamTLSConfig()
        if let caFile = try section.string("ca_file").map(resolve) {
            guard FileManager.default.isReadableFile(atPath: caFile) else { throw section.error(at: section.mapping["ca_file"], "ca_file", "cannot read \(caFile)") }
            config.caFile = caFile
        }
        if section.has("cert_file") || section.has("key_file") {
            config.clientCertificate = try Self.parseTLSFiles(&section, resolve: resolve)
        }
        try section.finish()
        return config
    }

    // MARK: Helpers

    static func absolute(_ path: String, relativeTo base: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardizedFileURL.path
    }

    private static func line(of error: any Error) -> Int? {
        if let yamlError = error as? YamlError {
            switch yamlError {
            case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
            default: return nil
            }
        }
        return nil
    }
}
