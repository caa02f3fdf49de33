// SPDX-License-Identifier: Apache-2.0
public import ArgumentParser
import Foundation

/// The `gatehouse` command.
public struct Gatehouse: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "A JWT-verifying edge/sidecar gateway and a co-located token issuer.",
        subcommands: [
            ServeCommand.self, MigrateCommand.self, UsersCommand.self, SessionsCommand.self, TokenCommand.self, KeysCommand.self, ConfigCommand.self,
            EchoCommand.self,
        ]
    )

    public init() {}

    /// Runs the command line. (Calling `main()` from another module picks ArgumentParser's
    /// synchronous overload; the annotated reference here selects the async one.)
    public static func runMain() async {
        let main: () async -> Void = Self.main
        await main()
    }
}

/// `--config PATH`, defaulting to $GATEHOUSE_CONFIG, then ./gateway.conf.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $GATEHOUSE_CONFIG, then ./gateway.conf).")
    var config: String?

    /// The path to read, or nil when none was given and none exists.
    var resolvedPath: String? {
        if let config { return config }
        if let fromEnvironment = ProcessInfo.processInfo.environment["GATEHOUSE_CONFIG"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return FileManager.default.fileExists(atPath: "gateway.conf") ? "gateway.conf" : nil
    }
}

/// Writes to standard error (the `stderr` global is not concurrency-safe in Swift 6).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
