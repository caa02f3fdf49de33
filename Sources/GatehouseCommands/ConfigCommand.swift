// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseJOSE

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with gateway.conf.", subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration and print the effective values, secrets masked. Exits 1 on an error."
        )

        @OptionGroup var config: ConfigOption

        func run() async throws {
            guard let path = self.config.resolvedPath else {
                throw ValidationError("no configuration: pass --config PATH, set GATEHOUSE_CONFIG, or create ./gateway.conf")
            }
            let config: GatewayConfig
            do {
                config = try GatewayConfig.load(path: path)
                for (file, location) in config.fileReferences.sorted(by: { ($0.value.line ?? 0) < ($1.value.line ?? 0) })
                where !FileManager.default.isReadableFile(atPath: file) {
                    throw ConfigError(file: location.file, line: location.line, key: location.key, message: "cannot read \(file)")
                }
                for provider in config.verify.providers {
                    if case .jwksURL = provider.keys { continue }
                    _ = try provider.makeVerifier(issuerConfig: config.issuer, maxTokenBytes: config.verify.maxTokenBytes)
                }
                if let issuer = config.issuer { _ = try KeyFiles.loadPEM(issuer.signing.keyFile) }
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            for warning in config.warnings { printError("warning: \(warning)") }
            print(EffectiveConfig(config).text)
        }
    }
}

/// The configuration as `config check` prints it: every value after defaults, secrets as `***`.
struct EffectiveConfig {
    let text: String

    init(_ config: GatewayConfig) {
        var lines = [
            "# effective configuration of \(config.source)",
            "listen: \(config.listen)", "admin_listen: \(config.adminListen)",
            "shutdown_grace: \(Self.format(config.shutdownGrace))", "threads: \(config.threads)",
            "max_connections: \(config.maxConnections)", "header_timeout: \(Self.format(config.headerTimeout))",
            "idle_timeout: \(Self.format(config.idleTimeout))", "trusted_proxies: \(Self.list(config.trustedProxies))",
            "log_format: \(config.logFormat.rawValue)", "access_log: \(config.accessLog)",
        ]
        if let tls = config.tls { lines.append("tls: { cert_file: \(tls.certificateFile), key_file: \(tls.keyFile) }") }
        if let issuer = config.issuer {
            lines += [
                "issuer:", "  enabled: true", "  issuer: \(issuer.issuer)", "  audience: \(issuer.audience)",
                "  access_token_ttl: \(Self.format(issuer.accessTokenTTL))", "  refresh_token_ttl: \(Self.format(issuer.refreshTokenTTL))",
                "  refresh_reuse_interval: \(Self.format(issuer.refreshReuseInterval))",
                "  signing: { alg: \(issuer.signing.algorithm.rawValue), key_file: \(issuer.signing.keyFile), previous_key_files: \(Self.list(issuer.signing.previousKeyFiles)) }",
                "  login_limit: { failures: \(issuer.loginLimitFailures), window: \(Self.format(issuer.loginLimitWindow)) }",
                "  database: \(Self.maskPassword(issuer.database))", "  default_role: \(issuer.defaultRole)",
                "  argon2: { memory_kib: \(issuer.argon2.memoryKiB), iterations: \(issuer.argon2.iterations), parallelism: \(issuer.argon2.parallelism) }",
                "  password_min_length: \(issuer.passwordMinLength)", "  refresh_secret: \(issuer.refreshSecret == nil ? "null" : "'***'")",
                "  previous_refresh_secrets: \(Self.list(issuer.previousRefreshSecrets.map { _ in "'***'" }))",
                "  hash_queue: \(issuer.hashQueue)", "  auto_migrate: \(issuer.autoMigrate)", "  cookies: \(issuer.cookies)",
                "  allowed_origins: \(Self.list(issuer.allowedOrigins))", "  revocation_secret: \(issuer.revocationSecret == nil ? "null" : "'***'")",
            ]
        } else {
            lines += ["issuer: { enabled: false }"]
        }
        lines += ["verify:", "  providers:"]
        for provider in config.verify.providers {
            let keys: String
            switch provider.keys {
            case .local: keys = "local"
            case .jwksURL(let url, let caFile): keys = "{ jwks_url: \(url)\(caFile.map { ", ca_file: \($0)" } ?? "") }"
            case .jwksFile(let path): keys = "{ jwks_file: \(path) }"
            case .publicKeyFile(let path, let kid): keys = "{ public_key_file: \(path)\(kid.map { ", kid: \($0)" } ?? "") }"
            case .secret(_, let kid): keys = "{ secret: '***', kid: \(kid) }"
            }
            let typ: String
            switch provider.type {
            case .any: typ = "any"
            case .required(let value): typ = value
            }
            lines += [
                "    - issuer: \(provider.issuer)", "      audience: \(provider.audience ?? "null")",
                "      algorithms: \(Self.list(provider.algorithms.sorted().map(\.rawValue)))", "      keys: \(keys)",
                "      typ: \(typ)", "      leeway: \(Self.format(provider.leeway))",
            ]
        }
        lines += [
            "  token_cache: { size: \(config.verify.tokenCacheSize) }", "  cookie: \(config.verify.cookie ?? "null")",
            "  jwks_startup_timeout: \(Self.format(config.verify.jwksStartupTimeout))",
            "  max_token_bytes: \(config.verify.maxTokenBytes)",
        ]
        switch config.verify.revocation {
        case .off: lines.append("  revocation: { feed: off }")
        case .postgres(let database): lines.append("  revocation: { feed: postgres, database: \(Self.maskPassword(database)) }")
        case .poll(let url, _, let interval, let caFile):
            let trust = caFile.map { ", ca_file: \($0)" } ?? ""
            lines.append("  revocation: { feed: poll, url: \(url), secret: '***', interval: \(Self.format(interval))\(trust) }")
        }
        lines.append(config.routes.isEmpty ? "routes: []" : "routes:")
        for route in config.routes {
            lines += [
                "  - prefix: \(route.prefix)", "    upstream: \(route.upstream)", "    auth: \(route.auth.rawValue)",
                "    any_role: \(Self.list(route.anyRole))", "    all_scopes: \(Self.list(route.allScopes))",
                "    timeout: \(Self.format(route.timeout))", "    connect_timeout: \(Self.format(route.connectTimeout))",
                "    allow_preflight: \(route.allowPreflight)", "    strip_prefix: \(route.stripPrefix)",
                "    preserve_host: \(route.preserveHost)", "    forward_token: \(route.forwardToken)",
                "    semicolons: \(route.keepSemicolons ? "keep" : "refuse")", "    encoded_slashes: \(route.keepEncodedSlashes ? "keep" : "refuse")",
            ]
            if let tls = route.upstreamTLS {
                let parts = [tls.caFile.map { "ca_file: \($0)" }, tls.clientCertificate.map { "cert_file: \($0.certificateFile), key_file: \($0.keyFile)" }]
                lines.append("    upstream_tls: { \(parts.compactMap { $0 }.joined(separator: ", ")) }")
            }
        }
        self.text = lines.joined(separator: "\n")
    }

    private static func format(_ duration: Duration) -> String {
        let milliseconds = Int64(duration.seconds * 1000)
        if milliseconds % 86_400_000 == 0, milliseconds > 0 { return "\(milliseconds / 86_400_000)d" }
        if milliseconds % 3_600_000 == 0, milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0, milliseconds > 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }

    private static func list(_ values: [String]) -> String { "[" + values.joined(separator: ", ") + "]" }

    /// The database setting with every password libpq would read replaced by `***`: in a URI
    /// (`postgres[ql]://user:pw@host/db`, the query's `password=`), and in a keyword/value string
    /// (`password=pw`, `password = pw`, `password='a b\' c'`, and inside a `dbname` that is itself
    /// a connection string, which libpq expands).
    static func maskPassword(_ database: String) -> String {
        let lower = database.lowercased()
        if lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") { return Self.maskURIPassword(database) }
        return Self.maskKeywordPassword(database)
    }

    private static func maskURIPassword(_ uri: String) -> String {
        let text = Array(uri)
        let authorityStart = Array(uri.lowercased()).firstIndex(of: ":")! + 3
        let queryStart = text[authorityStart...].firstIndex(of: "?") ?? text.endIndex
        var head = Array(text[..<queryStart])
        // user:password@ — the last @ before the query, so that an unencoded @ in the password is
        // masked too.
        if let at = head[authorityStart...].lastIndex(of: "@"), let colon = head[authorityStart..<at].firstIndex(of: ":") {
            head = Array(head[...colon]) + Array("***") + Array(head[at...])
        }
        guard queryStart < text.endIndex else { return String(head) }
        let query = String(text[text.index(after: queryStart)...]).split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            let name = String(pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0])
            switch (name.removingPercentEncoding ?? name).lowercased() {
            case "password": return name + "=***"
            case "dbname": return name + "=" + Self.maskPassword(String(pair.dropFirst(name.count + 1)).removingPercentEncoding ?? "")
            default: return String(pair)
            }
        }
        return String(head) + "?" + query.joined(separator: "&")
    }

    /// Scans `keyword = value` pairs as libpq does: whitespace around `=`, values bare (a backslash
    /// escapes the next character) or single-quoted (backslash escapes inside).
    private static func maskKeywordPassword(_ conninfo: String) -> String {
        let characters = Array(conninfo)
        func isSpace(_ character: Character) -> Bool { character.isWhitespace }
        var output = ""
        var index = 0
        while index < characters.count {
            if isSpace(characters[index]) {
                output.append(characters[index])
                index += 1
                continue
            }
            let keywordStart = index
            while index < characters.count, !isSpace(characters[index]), characters[index] != "=" { index += 1 }
            let keyword = String(characters[keywordStart..<index])
            output += keyword
            while index < characters.count, isSpace(characters[index]) {
                output.append(characters[index])
                index += 1
            }
            let isPassword = keyword.lowercased() == "password"
            guard index < characters.count, characters[index] == "=" else {
                // Not a pair (libpq refuses it); still, a word after "password" is masked.
                if isPassword, index < characters.count {
                    while index < characters.count, !isSpace(characters[index]) { index += 1 }
                    output += "***"
                }
                continue
            }
            output.append("=")
            index += 1
            while index < characters.count, isSpace(characters[index]) {
                output.append(characters[index])
                index += 1
            }
            let valueStart = index
            if index < characters.count, characters[index] == "'" {
                index += 1
                while index < characters.count {
                    if characters[index] == "\\" {
                        index += 2
                        continue
                    }
                    index += 1
                    if characters[index - 1] == "'" { break }
                }
            } else {
                while index < characters.count, !isSpace(characters[index]) {
                    index += characters[index] == "\\" ? 2 : 1
                }
            }
            index = min(index, characters.count)
            let value = String(characters[valueStart..<index])
            if isPassword {
                output += "***"
            } else if keyword.lowercased() == "dbname", value.contains("=") || value.contains("://") {
                let quoted = value.hasPrefix("'")
                let inner = quoted ? String(value.dropFirst().dropLast(value.count > 1 && value.hasSuffix("'") ? 1 : 0)) : value
                let masked = Self.maskPassword(inner.replacingOccurrences(of: "\\'", with: "'").replacingOccurrences(of: "\\\\", with: "\\"))
                output += quoted ? "'" + masked.replacingOccurrences(of: "'", with: "\\'") + "'" : masked
            } else {
                output += value
            }
        }
        return output
    }
}
