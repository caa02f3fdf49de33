// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import Testing
import Yams

/// docker/: no Docker engine runs here, so what can be checked is: the runtime packages exist, the
/// compose and Kubernetes files parse, and their ports, paths, commands and environment agree with
/// the gateway.conf they mount (which must itself be valid).
@Suite("docker/")
struct DockerFilesTests {
    static let docker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docker")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: Self.docker.appendingPathComponent(name), encoding: .utf8)
    }

    /// Every `${VAR}` the configuration uses set to a placeholder: parsing then fails if a variable
    /// is used that `provided` does not name.
    static func parse(_ conf: String, file: String, provided: [String]) throws -> GatewayConfig {
        try GatewayConfig.parse(
            conf, file: file, baseDirectory: "/etc/gatehouse",
            environment: Dictionary(uniqueKeysWithValues: provided.map { ($0, "placeholder-value-0123456789abcdef0123456789") })
        )
    }

    /// "host:port" → port; "a:b:c" (address:host:container) → the last two.
    static func port(_ text: String) -> Int? { Int(text.split(separator: ":").last ?? "") }

    @Test("Dockerfile: the runtime packages exist, the user is not root, and the defaults agree with the compose file")
    func dockerfile() throws {
        let dockerfile = try Self.text("Dockerfile")
        let stages = Array(dockerfile.components(separatedBy: "\nFROM ").dropFirst())
        #expect(stages.count == 2, "two stages: build and run")
        func packages(_ stage: String) -> [String] {
            guard let install = stage.range(of: "--no-install-recommends") else { return [] }
            return stage[install.upperBound...].prefix { $0 != "&" }.split(whereSeparator: { $0 == " " || $0 == "\\" || $0 == "\n" })
                .map(String.init).filter { !$0.isEmpty }
        }
        let runtime = packages(stages[1])
        #expect(Set(runtime) == ["libssl3", "libargon2-1", "libpq5", "libsqlite3-0", "ca-certificates"])
        for package in runtime {
            let policy = try Self.run("/usr/bin/apt-cache", ["policy", package])
            let known = policy.contains("Candidate:") && !policy.contains("Candidate: (none)") || policy.contains("Installed: ") && !policy.contains("Installed: (none)")
            #expect(known, "\(package) is not a Debian package here: \(policy)")
        }
        // The build stage installs what the Makefile installs for a local build.
        let makefile = try String(contentsOf: Self.docker.deletingLastPathComponent().appendingPathComponent("Makefile"), encoding: .utf8)
        let local = makefile.firstMatch(of: /SYSTEM_PACKAGES := ([^\n]+)/).map { $0.1.split(separator: " ").map(String.init) } ?? []
        #expect(Set(packages(stages[0])) == Set(local))
        #expect(dockerfile.contains("--static-swift-stdlib"))
        #expect(stages[1].contains("\nUSER gatehouse\n") && stages[1].contains("useradd --system --uid 10001"))
        #expect(stages[1].contains("/dev/tcp/127.0.0.1/9901") && stages[1].contains("GET /healthz"))
        #expect(stages[1].contains(#"CMD ["serve", "--config", "/etc/gatehouse/gateway.conf"]"#))
    }

    @Test("docker-compose.yml: the mounted gateway.conf is valid, and ports, upstreams and the database agree with it")
    func compose() throws {
        let compose = try #require(try Yams.load(yaml: Self.text("docker-compose.yml")) as? [String: Any])
        let services = try #require(compose["services"] as? [String: [String: Any]])
        let gatehouse = try #require(services["gatehouse"])
        #expect(gatehouse["command"] as? [String] == ["serve", "--config", "/etc/gatehouse/gateway.conf"])
        let mount = try #require((gatehouse["volumes"] as? [String])?.first { $0.hasSuffix(":/etc/gatehouse/gateway.conf:ro") })
        let source = String(mount.split(separator: ":")[0])
        let environment = try #require(gatehouse["environment"] as? [String: String])
        let config = try Self.parse(Self.text(source), file: source, provided: Array(environment.keys))

        let published = (gatehouse["ports"] as? [String] ?? []).compactMap(Self.port)
        #expect(published.contains(config.listen.port) && published.contains(config.adminListen.port))
        // Each upstream is a service of the file, listening where the route sends it.
        for route in config.routes {
            let upstream = try #require(services[route.upstream.host], "no service \(route.upstream.host)")
            #expect(upstream["command"] as? [String] == ["echo", "--listen", "0.0.0.0:\(route.upstream.port)"])
        }
        // The database is the postgres service, with the password it is given.
        let database = try #require(environment["DATABASE_URL"])
        #expect(database.contains("@postgres:5432/gatehouse"))
        let postgres = try #require(services["postgres"]?["environment"] as? [String: String])
        #expect(database.contains(":\(postgres["POSTGRES_PASSWORD"]!)@"))
        // The signing key comes from the volume the keys service fills.
        #expect(config.issuer?.signing.keyFile == "/keys/signing.pem")
        #expect((services["keys"]?["volumes"] as? [String])?.contains("keys:/keys") == true)
        #expect((gatehouse["volumes"] as? [String])?.contains("keys:/keys:ro") == true)
    }

    @Test("Kubernetes: each Gatehouse container's ConfigMap is valid, its env provides every variable, ports and probes agree")
    func kubernetes() throws {
        var documents: [[String: Any]] = []
        for file in ["k8s/issuer.yaml", "k8s/sidecar.yaml"] {
            documents += try Yams.load_all(yaml: Self.text(file)).compactMap { $0 as? [String: Any] }
        }
        func named(_ kind: String, _ name: String) -> [String: Any]? {
            documents.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name }
        }
        var checked = 0
        var listenPorts: [String: Int] = [:]
        var issuerAddresses: [String] = []
        for deployment in documents where deployment["kind"] as? String == "Deployment" {
            let name = (deployment["metadata"] as? [String: Any])?["name"] as? String ?? ""
            let pod = ((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any] ?? [:]
            let volumes = pod["volumes"] as? [[String: Any]] ?? []
            for container in pod["containers"] as? [[String: Any]] ?? [] where (container["image"] as? String)?.hasPrefix("gatehouse:") == true {
                checked += 1
                #expect(container["args"] as? [String] == ["serve", "--config", "/etc/gatehouse/gateway.conf"])
                let mounts = container["volumeMounts"] as? [[String: Any]] ?? []
                let configMount = try #require(mounts.first { $0["mountPath"] as? String == "/etc/gatehouse/gateway.conf" })
                let volume = try #require(volumes.first { $0["name"] as? String == configMount["name"] as? String })
                let mapName = try #require((volume["configMap"] as? [String: Any])?["name"] as? String)
                let data = try #require(named("ConfigMap", mapName)?["data"] as? [String: String])
                let env = (container["env"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                let config = try Self.parse(try #require(data["gateway.conf"]), file: "\(mapName)/gateway.conf", provided: env)

                let ports = (container["ports"] as? [[String: Any]] ?? []).compactMap { $0["containerPort"] as? Int }
                #expect(ports.contains(config.listen.port) && ports.contains(config.adminListen.port))
                #expect(config.adminListen.host == "0.0.0.0", "the kubelet probes from outside the container")
                for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
                    let get = (container[probe] as? [String: Any])?["httpGet"] as? [String: Any]
                    #expect(get?["path"] as? String == path && get?["port"] as? Int == config.adminListen.port, "\(name) \(probe)")
                }
                // Files the configuration names are mounted where it looks for them.
                if let keyFile = config.issuer?.signing.keyFile {
                    let directory = (keyFile as NSString).deletingLastPathComponent
                    let keys = try #require(mounts.first { $0["mountPath"] as? String == directory })
                    let secret = volumes.first { $0["name"] as? String == keys["name"] as? String }?["secret"] as? [String: Any]
                    #expect(secret?["secretName"] != nil, "the signing key comes from a Secret")
                    #expect(config.issuer?.revocationSecret != nil && config.issuer?.database.contains("placeholder") == true)
                }
                if config.issuer == nil {
                    #expect(mounts.count == 1, "a sidecar mounts its configuration only")
                    for provider in config.verify.providers {
                        if case .jwksURL(let url, _) = provider.keys { issuerAddresses.append(url) }
                    }
                    if case .poll(let url, _, _, _) = config.verify.revocation { issuerAddresses.append(url) }
                }
                listenPorts[name] = config.listen.port
            }
        }
        #expect(checked == 2)
        // Services send traffic to Gatehouse's listener.
        for service in documents where service["kind"] as? String == "Service" {
            let spec = service["spec"] as? [String: Any] ?? [:]
            let app = (spec["selector"] as? [String: Any])?["app"] as? String ?? ""
            let target = (spec["ports"] as? [[String: Any]])?.first?["targetPort"] as? Int
            #expect(target == listenPorts[app], "service \(app)")
        }
        // The sidecar reaches the issuer through its Service (port 80 → the issuer's listener).
        #expect(!issuerAddresses.isEmpty)
        for address in issuerAddresses { #expect(address.hasPrefix("http://gatehouse-issuer.auth.svc.cluster.local/"), "\(address)") }
        #expect(named("Service", "gatehouse-issuer") != nil)
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
