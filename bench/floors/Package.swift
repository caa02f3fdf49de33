// swift-tools-version:6.1
// The floors: what a byte relay costs on this machine, with SwiftNIO and without it. Two
// executables that copy bytes 1:1 between a client and the upstream (no HTTP), run as plain
// candidates of the shared anchor harness by ../floors.sh. A separate package so that it builds
// in seconds and never touches Gatehouse's graph.
import PackageDescription

let package = Package(
    name: "gatehouse-floors",
    products: [
        .executable(name: "nio-relay", targets: ["nio-relay"]),
        .executable(name: "epoll-relay", targets: ["epoll-relay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "nio-relay",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // <sys/epoll.h> and accept4 for epoll-relay: headers only, both are in libc.
        .systemLibrary(name: "CEpoll"),
        .executableTarget(name: "epoll-relay", dependencies: ["CEpoll"]),
    ]
)
