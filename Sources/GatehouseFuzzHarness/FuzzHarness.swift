// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import GatehouseHTTP
import GatehouseJOSE
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// What the fuzzers (Fuzz/, `make fuzz`) and the corpus replay test feed arbitrary bytes to: the
/// JWS verifier and the strict JSON reader, the configuration parser, and the gateway's handling
/// of a request head. Each must answer every input with a verdict or an error, never a crash.
public enum FuzzHarness {
    /// A gateway's verifiers for HS256 and ES256 tokens, made once.
    private static let verifiers: ProviderSet = {
        let secret = Array("fuzzing-secret-0123456789abcdef0123".utf8)
        let ec = try! EVPKey.generate(.ec(.p256))
        let hmac = Verifier(
            policy: VerificationPolicy(algorithms: [.hs256], issuer: "https://hs.test", audience: "api"),
            keys: try! KeySet([ConfiguredKey(keyID: "h1", material: .secret(secret))], allowed: [.hs256])
        )
        let ecdsa = Verifier(
            policy: VerificationPolicy(algorithms: [.es256], issuer: "https://es.test", audience: "api"),
            keys: try! KeySet([ConfiguredKey(keyID: "e1", material: .asymmetric(ec))], allowed: [.es256])
        )
        return ProviderSet([hmac, ecdsa])
    }()

    private static let authorizer: RequestAuthorizer = {
        let upstream = UpstreamURL("http://127.0.0.1:9")!
        let routes = [
            RouteConfig(prefix: "/", upstream: upstream, auth: .public),
            RouteConfig(prefix: "/api/", upstream: upstream, auth: .required, allScopes: ["read"]),
            RouteConfig(prefix: "/opt/", upstream: upstream, auth: .optional, allowPreflight: true),
            RouteConfig(prefix: "/admin/", upstream: upstream, auth: .required, anyRole: ["admin"]),
            RouteConfig(prefix: "/legacy/", upstream: upstream, auth: .public, forwardToken: false, keepSemicolons: true, keepEncodedSlashes: true),
        ]
        return RequestAuthorizer(routes: RouteTable(routes), providers: Self.verifiers, cookie: "access_token")
    }()

    /// The bytes as a compact JWS through both verifiers, and as a JSON document.
    public static func jose(_ bytes: UnsafeRawBufferPointer) {
        _ = try? Self.verifiers.verify(String(decoding: bytes, as: UTF8.self), now: 1_800_000_000)
        _ = try? JSONReader.parse(bytes)
        _ = Base64URL.decode(String(decoding: bytes, as: UTF8.self))
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    /// The bytes as one direction of a WebSocket tunnel, through the frame-header reader: read
    /// whole, split in two where the first byte says, and frame by frame (stopping at each
    /// boundary), the three must agree — consumed counts, boundaries, close frames and refusals —
    /// and nothing may trap whatever the lengths say.
    public static func webSocketFrames(_ bytes: UnsafeRawBufferPointer) {
        func scanned(_ parts: [UnsafeRawBufferPointer], stopping: Bool) -> (between: Bool, sawClose: Bool)? {
            var scanner = WebSocketFrameScanner()
            for part in parts {
                var rest = part
                repeat {
                    guard let taken = try? scanner.scan(rest, stopAtBoundary: stopping) else { return nil }
                    precondition(taken <= rest.count, "the scanner took more than it was given")
                    // Stopping only between frames: taking nothing means a boundary was already there.
                    precondition(taken > 0 || rest.isEmpty || scanner.isBetweenFrames, "stuck mid-frame")
                    if taken == 0, !rest.isEmpty {
                        // At a boundary: the next frame's bytes are read without stopping first.
                        guard let next = try? scanner.scan(UnsafeRawBufferPointer(rebasing: rest.prefix(1))) else { return nil }
                        precondition(next == 1)
                        rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(1))
                    } else {
                        rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(taken))
                    }
                } while stopping && !rest.isEmpty
                precondition(rest.isEmpty, "a read was not taken whole")
            }
            return (scanner.isBetweenFrames, scanner.sawClose)
        }
        let whole = scanned([bytes], stopping: false)
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        let split = scanned([UnsafeRawBufferPointer(rebasing: bytes[..<cut]), UnsafeRawBufferPointer(rebasing: bytes[cut...])], stopping: false)
        let framewise = scanned([bytes], stopping: true)
        precondition(whole?.between == split?.between && whole?.sawClose == split?.sawClose, "a split read disagrees with a whole one")
        precondition(whole?.between == framewise?.between && whole?.sawClose == framewise?.sawClose, "frame-by-frame reading disagrees")
    }

    /// The bytes as a gateway.conf.
    public static func config(_ bytes: UnsafeRawBufferPointer) {
        _ = try? GatewayConfig.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.conf", baseDirectory: "/nonexistent")
    }

    /// The bytes as a request head — a method, a target, then `name: value` lines — through the
    /// per-request decision (path normalisation, routing, credentials, verification, identity) and
    /// the header rewriting of a forwarded request, and as a response head through its rewriting.
    public static func head(_ bytes: UnsafeRawBufferPointer) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first else { return }
        let requestLine = first.split(separator: " ", maxSplits: 1)
        let method = HTTPMethod(rawValue: String(requestLine.first ?? "GET"))
        let target = requestLine.count > 1 ? String(requestLine[1]) : "/"
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            // Only heads NIO's decoder would hand over: it refuses a request whose header name is
            // not a token (RFC 9110 §5.6.2) before the gateway sees it.
            guard let colon = line.firstIndex(of: ":"), !line[..<colon].isEmpty, line[..<colon].utf8.allSatisfy(Self.isTokenByte) else { continue }
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
        // The same fields as an upstream's response head, as the client would get it.
        var response = headers
        HeaderRewriter.rewriteResponse(&response)
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)
        guard case .forward(let route, _, let identity) = Self.authorizer.decide(head, now: 1_800_000_000) else { return }
        var rewritten = headers
        HeaderRewriter.rewriteRequest(
            &rewritten, identity: identity,
            context: ForwardingContext(clientAddress: "192.0.2.1", scheme: "http", upstreamAuthority: "127.0.0.1:9",
                                       preserveHost: route.preserveHost, forwardToken: route.forwardToken, accessCookie: "access_token"),
            requestID: "fuzz"
        )
    }
}

/// Runs each file at `paths` through `harness` (a fuzzer binary built without libFuzzer).
public func replay(_ paths: some Sequence<String>, through harness: (UnsafeRawBufferPointer) -> Void) {
    for path in paths {
        guard let file = fopen(path, "rb") else { continue }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while case let count = fread(&chunk, 1, chunk.count, file), count > 0 { bytes += chunk[..<count] }
        fclose(file)
        bytes.withUnsafeBytes { harness($0) }
    }
}

#if FUZZING
/// Hands the process to libFuzzer, from an executable's `<module>_main` (SwiftPM points `main`
/// there, so libFuzzer's own `main` is not used).
public func runLibFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif
