// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseIssuer
import GatehousePassword
import GatehouseStore
#if canImport(Glibc)
import Glibc
#endif

/// The issuer's configuration from `--config`, for commands that work on its database.
private func issuerConfig(_ option: ConfigOption) throws -> IssuerConfig {
    guard let path = option.resolvedPath else {
        throw ValidationError("no configuration: pass --config PATH, set GATEHOUSE_CONFIG, or create ./gateway.conf")
    }
    let config: GatewayConfig
    do { config = try GatewayConfig.load(path: path) } catch { throw ValidationError("\(error)") }
    guard let issuer = config.issuer else { throw ValidationError("\(path): the issuer is disabled, so there is no database") }
    return issuer
}

/// Opens the store and fails in one sentence.
private func openStore(_ issuer: IssuerConfig) throws -> Store {
    do { return try Store.open(issuer.database, connections: 1) } catch { throw ValidationError("cannot open the database: \(error)") }
}

private func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Create or upgrade the issuer's schema (idempotent; safe while other issuers start)."
    )

    @OptionGroup var config: ConfigOption

    func run() async throws {
        let store = try openStore(try issuerConfig(self.config))
        defer { store.database.close() }
        let applied: [Int]
        do { applied = try store.migrate(now: nowMilliseconds()) } catch { throw ValidationError("migration failed: \(error)") }
        print(applied.isEmpty ? "schema up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Manage the issuer's users.", subcommands: [Create.self, GrantRole.self, RevokeRole.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user with a role.",
            discussion: "The password is read from standard input with --password-stdin, else prompted for on a terminal without echo."
        )

        @Option(help: "The user's email.") var email: String
        @Option(help: "viewer, editor or admin.") var role: String = "viewer"
        @Option(help: "Display name.") var name: String?
        @Flag(help: "Read the password from standard input (one line).") var passwordStdin = false
        @OptionGroup var config: ConfigOption

        func run() async throws {
            let issuer = try issuerConfig(self.config)
            let password: String
            if self.passwordStdin {
                password = readLine(strippingNewline: true) ?? ""
            } else {
                guard isatty(STDIN_FILENO) == 1 else {
                    throw ValidationError("no terminal to prompt for the password on: pass --password-stdin and pipe it in")
                }
                password = try Self.promptWithoutEcho("Password for \(self.email): ")
            }
            let bytes = Array(password.utf8)
            guard (issuer.passwordMinLength...1024).contains(bytes.count) else {
                throw ValidationError("the password must be \(issuer.passwordMinLength) to 1024 bytes")
            }
            guard let email = EmailAddress.normalize(self.email) else { throw ValidationError("\(self.email) is not an email address") }
            let parameters = Argon2Parameters(
                memoryKiB: issuer.argon2.memoryKiB, iterations: issuer.argon2.iterations, parallelism: issuer.argon2.parallelism
            )
            let hash = try Argon2id.hash(password: bytes, parameters: parameters)
            let store = try openStore(issuer)
            defer { store.database.close() }
            do {
                try store.migrate(now: nowMilliseconds())
                let user = try store.createUser(email: email, name: self.name, passwordHash: hash, role: self.role, now: nowMilliseconds())
                print("created user \(user.id) \(user.email) (\(user.roles.joined(separator: ",")))")
            } catch where error.kind == .uniqueViolation {
                throw ValidationError("a user with email \(email) exists")
            } catch {
                throw ValidationError("\(error)")
            }
        }

        /// Reads one line from the terminal with echo off (restored whatever happens).
        private static func promptWithoutEcho(_ prompt: String) throws -> String {
            FileHandle.standardError.write(Data(prompt.utf8))
            var saved = termios()
            guard tcgetattr(STDIN_FILENO, &saved) == 0 else { throw ValidationError("cannot read the terminal's settings") }
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
            defer {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            return readLine(strippingNewline: true) ?? ""
        }
    }

    struct GrantRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grant-role", abstract: "Give a user a role (effective at the user's next refresh or login)."
        )

        @Option(help: "The user's email.") var email: String
        @Option(help: "viewer, editor or admin.") var role: String
        @OptionGroup var config: ConfigOption

        func run() async throws {
            let store = try openStore(try issuerConfig(self.config))
            defer { store.database.close() }
            let email = EmailAddress.normalize(self.email) ?? self.email
            do { try store.grantRole(email: email, role: self.role) } catch { throw ValidationError("\(error)") }
            print("granted \(self.role) to \(email)")
        }
    }

    struct RevokeRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke-role", abstract: "Take a role from a user (effective at the user's next refresh or login)."
        )

        @Option(help: "The user's email.") var email: String
        @Option(help: "viewer, editor or admin.") var role: String
        @OptionGroup var config: ConfigOption

        func run() async throws {
            let store = try openStore(try issuerConfig(self.config))
            defer { store.database.close() }
            let email = EmailAddress.normalize(self.email) ?? self.email
            do { try store.revokeRole(email: email, role: self.role) } catch { throw ValidationError("\(error)") }
            print("revoked \(self.role) from \(email)")
        }
    }
}

struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "Manage the issuer's sessions.", subcommands: [Revoke.self]
    )

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a session, or every session of a user.",
            discussion: """
                Its refresh tokens stop working at once; gateways following the revocation log refuse its access tokens \
                within a second (401 revoked) until they expire.
                """
        )

        // Taken whatever they start with: a session id is base64url, and one in 64 begins with "-".
        @Option(parsing: .unconditional, help: "End every live session of the user with this email.") var user: String?
        @Option(parsing: .unconditional, help: "End the session with this id (the tokens' sid).") var sid: String?
        @OptionGroup var config: ConfigOption

        func validate() throws {
            guard (self.user == nil) != (self.sid == nil) else { throw ValidationError("pass exactly one of --user EMAIL and --sid SID") }
        }

        func run() async throws {
            let issuer = try issuerConfig(self.config)
            let store = try openStore(issuer)
            defer { store.database.close() }
            let lifetime = Int64(issuer.accessTokenTTL.seconds * 1000)
            do {
                if let sid = self.sid {
                    guard try store.revokeSession(id: sid, now: nowMilliseconds(), accessTokenLifetime: lifetime) else {
                        throw ValidationError("no session \(sid)")
                    }
                    print("revoked session \(sid)")
                } else if let email = self.user.flatMap(EmailAddress.normalize) ?? self.user {
                    guard let user = try store.user(email: email) else { throw ValidationError("no user with email \(email)") }
                    let ended = try store.revokeSessions(userID: user.id, now: nowMilliseconds(), accessTokenLifetime: lifetime)
                    print("revoked \(ended.count) session\(ended.count == 1 ? "" : "s") of \(email)")
                }
            } catch let error as StoreError {
                throw ValidationError("\(error)")
            }
        }
    }
}
