// SPDX-License-Identifier: Apache-2.0
public import GatehouseJOSE

/// `host:port` to listen on.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port` or `:port` (all interfaces).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// An upstream's `http(s)://host:port[/base]`.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    public var basePath: String

    public init?(_ text: String) {
        let schemes = ["http://": 80, "https://": 443]
        guard let (prefix, defaultPort) = schemes.first(where: { text.lowercased().hasPrefix($0.key) }) else { return nil }
        let rest = text.dropFirst(prefix.count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let path = rest.dropFirst(authority.count)
        guard !path.contains("?"), !path.contains("#"), !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port = defaultPort
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else { return nil }
            port = parsed
            host = authority[..<colon]
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else { return nil }
        self.scheme = String(prefix.dropLast(3)).lowercased()
        self.host = String(host)
        self.port = port
        self.basePath = path.hasSuffix("/") ? String(path.dropLast()) : String(path)
    }

    /// `localhost`, `127.0.0.0/8` or `::1`: traffic that never leaves the machine.
    public var isLoopback: Bool {
        if self.host.lowercased() == "localhost" || self.host == "::1" { return true }
        guard let bytes = TrustedProxies.bytes(of: self.host), bytes.count == 4 else { return false }
        return bytes[0] == 127
    }

    public var description: String { "\(self.scheme)://\(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)\(self.basePath)" }
}

/// The whole of `gateway.conf`, validated. Every key of DESIGN.md has exactly one place here.
public struct GatewayConfig: Sendable {
    public enum LogFormat: String, Sendable, CaseIterable { case auto, text, json }

    /// The file this came from (`<defaults>` for the development setup).
    public var source: String
    public var listen: ListenAddress
    public var adminListen: ListenAddress
    public var shutdownGrace: Duration
    /// Event loops; 0 = one per core.
    public var threads: Int
    public var maxConnections: Int
    public var headerTimeout: Duration
    public var idleTimeout: Duration
    /// Proxies whose `X-Forwarded-For` hop is believed, as addresses or CIDR blocks.
    public var trustedProxies: [String]
    public var logFormat: LogFormat
    /// Whether the gateway writes one access-log line per request (Gatehouse's own key; on by default).
    public var accessLog: Bool
    /// TLS on the listener (`tls: {cert_file, key_file}`); nil: plain HTTP.
    public var tls: TLSFiles?
    /// nil when the issuer is off.
    public var issuer: IssuerConfig?
    public var verify: VerifyConfig
    public var routes: [RouteConfig]
    /// The key and JWKS files named, by absolute path, each with the key and line that names it
    /// (`message` empty), so that a file that cannot be read is reported where it was named.
    public var fileReferences: [String: ConfigError] = [:]

    /// What is allowed but unsafe, said at start (`serve`) and by `config check`: a `jwks_url` or
    /// revocation poll `url` over plain http to a host off this machine, where anyone on the path
    /// can swap the keys or hide revocations.
    public var warnings: [String] {
        var urls: [(key: String, url: String)] = []
        for provider in self.verify.providers {
            if case .jwksURL(let url, _) = provider.keys { urls.append(("verify.keys.jwks_url", url)) }
        }
        if case .poll(let url, _, _, _) = self.verify.revocation { urls.append(("verify.revocation.url", url)) }
        return urls.compactMap { key, text in
            guard let url = UpstreamURL(text), url.scheme == "http", !url.isLoopback else { return nil }
            return "\(key) \(text) is plain http to a host off this machine: anyone on the path can change what it answers; use https"
        }
    }
}

/// A certificate chain and its private key, as PEM files (absolute paths).
public struct TLSFiles: Sendable, Equatable {
    public var certificateFile: String
    public var keyFile: String

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// How a route talks TLS to its https upstream (`upstream_tls`): whom to trust, and the client
/// certificate to show when the upstream asks for one (mutual TLS).
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// PEM certificates trusted instead of the system's bundle.
    public var caFile: String?
    public var clientCertificate: TLSFiles?

    public init(caFile: String? = nil, clientCertificate: TLSFiles? = nil) {
        self.caFile = caFile
        self.clientCertificate = clientCertificate
    }
}

public struct IssuerConfig: Sendable {
    public struct Signing: Sendable {
        public var algorithm: Algorithm
        /// Absolute path of the PEM (PKCS#8) signing key.
        public var keyFile: String
        /// Keys still published and accepted, no longer used to sign.
        public var previousKeyFiles: [String]
    }

    public struct Argon2: Sendable, Equatable {
        public var memoryKiB: Int
        public var iterations: Int
        public var parallelism: Int

        public init(memoryKiB: Int, iterations: Int, parallelism: Int) {
            self.memoryKiB = memoryKiB
            self.iterations = iterations
            self.parallelism = parallelism
        }
    }

    public var issuer: String
    public var audience: String
    public var accessTokenTTL: Duration
    public var refreshTokenTTL: Duration
    public var refreshReuseInterval: Duration
    public var signing: Signing
    public var loginLimitFailures: Int
    public var loginLimitWindow: Duration
    /// `sqlite:PATH` (PATH made absolute) or a libpq conninfo string / URI.
    public var database: String
    public var defaultRole: String
    public var argon2: Argon2
    public var passwordMinLength: Int
    /// Signs refresh tokens (HS256) and keys their rotation; nil: both derived from the signing key.
    public var refreshSecret: String?
    /// Earlier refresh secrets: refresh tokens they signed are still accepted.
    public var previousRefreshSecrets: [String] = []
    public var hashQueue: Int
    public var autoMigrate: Bool
    public var cookies: Bool
    public var allowedOrigins: [String]
    public var revocationSecret: String?
}

/// Where a provider's keys come from.
public enum KeySource: Sendable {
    /// The co-located issuer's signing keys.
    case local
    /// `caFile`: PEM certificates trusted instead of the system's bundle (an IdP behind a private CA).
    case jwksURL(String, caFile: String?)
    case jwksFile(String)
    case publicKeyFile(path: String, keyID: String?)
    case secret([UInt8], keyID: String)
}

public struct ProviderConfig: Sendable {
    /// Exact `iss`; also selects the provider when there are several.
    public var issuer: String
    public var audience: String?
    public var algorithms: Set<Algorithm>
    public var keys: KeySource
    public var type: VerificationPolicy.TypeRule
    public var leeway: Duration
}

public struct VerifyConfig: Sendable {
    public enum RevocationFeed: Sendable {
        case off
        case postgres(database: String)
        /// `caFile`: trust roots for an https `url` instead of the system's bundle.
        case poll(url: String, secret: String, interval: Duration, caFile: String?)
    }

    public var providers: [ProviderConfig]
    /// Verified-token cache entries; 0 switches it off.
    public var tokenCacheSize: Int
    public var cookie: String?
    /// Origins whose cookie-authenticated unsafe requests the gateway admits (with
    /// `issuer.allowed_origins`): for a gateway whose cookies another issuer sets.
    public var allowedOrigins: [String]
    public var jwksStartupTimeout: Duration
    public var maxTokenBytes: Int
    public var revocation: RevocationFeed
}

public struct RouteConfig: Sendable {
    public enum Auth: String, Sendable, CaseIterable { case required, optional, `public` }

    public var prefix: String
    public var upstream: UpstreamURL
    public var auth: Auth
    public var anyRole: [String]
    public var allScopes: [String]
    public var timeout: Duration
    public var connectTimeout: Duration
    public var allowPreflight: Bool
    public var stripPrefix: Bool
    public var preserveHost: Bool
    public var forwardToken: Bool
    /// `semicolons: keep`: `;` and `%3B` in the path pass (else 400), for upstreams that use
    /// path parameters (`;jsessionid`).
    public var keepSemicolons: Bool
    /// `encoded_slashes: keep`: `%2F`, `%5C` and `\` in the path pass (else 400), for upstreams
    /// that read `%2F` inside a segment (RabbitMQ's vhost `%2F`, GitLab's `group%2Fproject`).
    public var keepEncodedSlashes: Bool
    /// For an https upstream; nil: the system's bundle and no client certificate.
    public var upstreamTLS: UpstreamTLSConfig?
    /// A WebSocket tunnel in which nothing moves either way for this long is closed.
    public var websocketIdleTimeout: Duration
    /// `token_param`: the query parameter a WebSocket handshake may carry its access token in
    /// (browsers cannot set `Authorization` on one); removed before forwarding, never logged.
    public var tokenParameter: String?
    /// `websocket_outlive_token`: tunnels stay open past their token's `exp` (revocation still ends them).
    public var websocketOutlivesToken: Bool

    public init(
        prefix: String, upstream: UpstreamURL, auth: Auth, anyRole: [String] = [], allScopes: [String] = [],
        timeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(5), allowPreflight: Bool = false,
        stripPrefix: Bool = false, preserveHost: Bool = false, forwardToken: Bool = true, keepSemicolons: Bool = false,
        keepEncodedSlashes: Bool = false, upstreamTLS: UpstreamTLSConfig? = nil, websocketIdleTimeout: Duration = .seconds(3600),
        tokenParameter: String? = nil, websocketOutlivesToken: Bool = false
    ) {
        self.websocketIdleTimeout = websocketIdleTimeout
        self.tokenParameter = tokenParameter
        self.websocketOutlivesToken = websocketOutlivesToken
        self.keepSemicolons = keepSemicolons
        self.keepEncodedSlashes = keepEncodedSlashes
        self.upstreamTLS = upstreamTLS
        self.prefix = prefix
        self.upstream = upstream
        self.auth = auth
        self.anyRole = anyRole
        self.allScopes = allScopes
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.allowPreflight = allowPreflight
        self.stripPrefix = stripPrefix
        self.preserveHost = preserveHost
        self.forwardToken = forwardToken
    }
}
