// SPDX-License-Identifier: Apache-2.0
// Seconds per Argon2id hash alone (OWASP parameters by default), the baseline that the issuer's
// logins per second are compared with in bench/issuer.sh.
import Foundation
import GatehouseCrypto
import GatehousePassword

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let parameters = Argon2Parameters(
    memoryKiB: arguments.count > 0 ? arguments[0] : 19456, iterations: arguments.count > 1 ? arguments[1] : 2,
    parallelism: arguments.count > 2 ? arguments[2] : 1
)
let password = Array("correct horse battery".utf8)
var samples: [Double] = []
for _ in 0..<25 {
    let started = DispatchTime.now().uptimeNanoseconds
    _ = try Argon2id.hash(password: password, parameters: parameters)
    samples.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
}
samples.sort()
print(String(format: "%.6f", samples[samples.count / 2]))
