// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The per-request path's modules: release builds skip the run-time exclusivity checks (about 3 %
/// of the gateway's CPU in `perf`, in its handler's and parser's state); debug builds, and so every
/// test run, keep them and trap on a violation.
let hotPathSettings: [SwiftSetting] = swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // TLS for the gateway's own fetches (`jwks_url` over https).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // serve's listeners, refreshers, feeds and pools as Services under one ServiceGroup.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries: a link line and headers each, no Swift, no policy.
        .systemLibrary(
            name: "CGatehouseOpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CGatehouseArgon2",
            pkgConfig: "libargon2",
            providers: [.apt(["libargon2-dev"])]
        ),
        .systemLibrary(
            name: "CGatehouseLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CGatehouseSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),

        // libcrypto behind Swift types: keys, digests, MACs, signatures, randomness.
        .target(name: "GatehouseCrypto", dependencies: ["CGatehouseOpenSSL"], swiftSettings: swiftSettings),
        // Compact JWS, JWK/JWKS and the verifier. Depends on nothing but GatehouseCrypto.
        .target(name: "GatehouseJOSE", dependencies: ["GatehouseCrypto"], swiftSettings: swiftSettings),
        // Argon2id password hashing on a bounded pool.
        .target(
            name: "GatehousePassword",
            dependencies: ["CGatehouseArgon2", "GatehouseCrypto"],
            swiftSettings: swiftSettings
        ),
        // The store protocol and its two implementations (embedded SQLite, PostgreSQL via libpq).
        .target(
            name: "GatehouseStore",
            dependencies: [
                "CGatehouseSQLite", "CGatehouseLibPQ",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // gateway.conf: YAML through Yams' node API into one typed, validated value.
        .target(
            name: "GatehouseConfig",
            dependencies: ["GatehouseJOSE", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // What the gateway and the issuer share: the local-endpoint interface, credentials, the CSRF
        // check, the one access-token check (cache, revocations) and the one error response.
        .target(
            name: "GatehouseHTTP",
            dependencies: [
                "GatehouseJOSE", "GatehouseCrypto", "GatehouseConfig", "GatehouseHTTP1",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // register, login, refresh, logout, /users/me, JWKS: endpoints served on the gateway's listener.
        .target(
            name: "GatehouseIssuer",
            dependencies: [
                "GatehouseJOSE", "GatehouseCrypto", "GatehousePassword", "GatehouseStore", "GatehouseConfig", "GatehouseHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP/1.1 messages as bytes: the gateway's own strict parser of requests and responses.
        .target(
            name: "GatehouseHTTP1",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "GatehouseGateway",
            dependencies: [
                "GatehouseJOSE", "GatehouseConfig", "GatehouseCrypto", "GatehouseHTTP1", "GatehouseHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "GatehouseCommands",
            dependencies: [
                "GatehouseCrypto", "GatehouseJOSE", "GatehouseConfig", "GatehouseHTTP", "GatehouseIssuer", "GatehouseGateway",
                "GatehouseStore", "GatehousePassword",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "gatehouse", dependencies: ["GatehouseCommands"]),

        // What the fuzzers feed bytes to; the fuzz-* executables wrap it for libFuzzer (`make fuzz`
        // builds them with -sanitize=fuzzer -DFUZZING), GatehouseFuzzTests replays the corpus and
        // every crash through it.
        .target(
            name: "GatehouseFuzzHarness",
            dependencies: [
                "GatehouseJOSE", "GatehouseCrypto", "GatehouseConfig", "GatehouseHTTP", "GatehouseGateway",
                "GatehouseHTTP1", .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "fuzz-jose", dependencies: ["GatehouseFuzzHarness"], path: "Fuzz/jose"),
        .executableTarget(name: "fuzz-config", dependencies: ["GatehouseFuzzHarness"], path: "Fuzz/config"),
        .executableTarget(name: "fuzz-head", dependencies: ["GatehouseFuzzHarness"], path: "Fuzz/head"),
        .executableTarget(name: "fuzz-http1", dependencies: ["GatehouseFuzzHarness"], path: "Fuzz/http1"),
        .executableTarget(name: "fuzz-websocket", dependencies: ["GatehouseFuzzHarness"], path: "Fuzz/websocket"),

        // Benchmarks: run release-built, never as timed tests.
        // It calls libcrypto itself for the bare-primitive baseline it compares the verifier with.
        .executableTarget(
            name: "gatehouse-bench-jose",
            dependencies: ["GatehouseJOSE", "GatehouseCrypto", "CGatehouseOpenSSL"],
            path: "bench/jose",
            swiftSettings: swiftSettings
        ),

        // What several test targets share: a raw HTTP client and a throwaway PostgreSQL server.
        .target(name: "GatehouseTestSupport", path: "Tests/GatehouseTestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "GatehouseStoreTests",
            dependencies: ["GatehouseStore", "GatehouseTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseIssuerTests",
            dependencies: [
                "GatehouseIssuer", "GatehouseHTTP", "GatehouseGateway", "GatehouseConfig", "GatehouseJOSE", "GatehouseStore",
                "GatehousePassword", "GatehouseCrypto", "GatehouseTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // Seconds per Argon2id hash alone: the baseline of the issuer benchmark's logins per second.
        .executableTarget(
            name: "gatehouse-bench-argon2",
            dependencies: ["GatehousePassword", "GatehouseCrypto"],
            path: "bench/argon2",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseHTTP1Tests",
            dependencies: [
                "GatehouseHTTP1", "GatehouseFuzzHarness",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GatehouseCryptoTests", dependencies: ["GatehouseCrypto"], swiftSettings: swiftSettings),
        .testTarget(name: "GatehouseFuzzTests", dependencies: ["GatehouseFuzzHarness"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GatehouseJOSETests",
            dependencies: ["GatehouseJOSE", "GatehouseCrypto"],
            resources: [.copy("Vectors")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GatehousePasswordTests", dependencies: ["GatehousePassword"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GatehouseConfigTests",
            dependencies: ["GatehouseConfig", "GatehouseJOSE"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseGatewayTests",
            dependencies: [
                "GatehouseGateway", "GatehouseHTTP", "GatehouseJOSE", "GatehouseConfig", "GatehouseCrypto", "GatehouseTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseCommandsTests",
            dependencies: [
                "GatehouseCommands", "GatehouseJOSE", "GatehouseCrypto", "GatehouseConfig", "GatehouseTestSupport",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
