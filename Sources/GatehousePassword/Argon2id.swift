// SPDX-License-Identifier: Apache-2.0
internal import CGatehouseArgon2
import GatehouseCrypto

/// Argon2id cost parameters (RFC 9106). OWASP's recommendation is the default.
public struct Argon2Parameters: Sendable, Hashable {
    public var memoryKiB: Int
    public var iterations: Int
    public var parallelism: Int

    public static let owasp = Argon2Parameters(memoryKiB: 19456, iterations: 2, parallelism: 1)

    public init(memoryKiB: Int, iterations: Int, parallelism: Int) {
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
    }
}

/// An Argon2 failure, with libargon2's own message.
public struct Argon2Error: Error, CustomStringConvertible, Equatable {
    public let code: Int32
    public var description: String { String(cString: argon2_error_message(self.code)) }
}

/// Argon2id through the reference libargon2. Blocking and memory-hard by design: call it from a
/// bounded pool, never from an event loop.
public enum Argon2id {
    /// Random salt length, bytes.
    public static let saltLength = 16
    /// Tag length, bytes.
    public static let tagLength = 32

    /// The raw tag, with the optional secret and associated data of RFC 9106 §3.1.
    public static func tag(
        password: [UInt8], salt: [UInt8], secret: [UInt8] = [], associatedData: [UInt8] = [],
        parameters: Argon2Parameters, length: Int = Argon2id.tagLength
    ) throws(Argon2Error) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: length)
        var password = password, salt = salt, secret = secret, associatedData = associatedData
        let status = output.withUnsafeMutableBufferPointer { out in
            password.withUnsafeMutableBufferPointer { pwd in
                salt.withUnsafeMutableBufferPointer { salt in
                    secret.withUnsafeMutableBufferPointer { secret in
                        associatedData.withUnsafeMutableBufferPointer { ad in
                            var context = argon2_context(
                                out: out.baseAddress, outlen: UInt32(out.count),
                                pwd: pwd.baseAddress, pwdlen: UInt32(pwd.count),
                                salt: salt.baseAddress, saltlen: UInt32(salt.count),
                                secret: secret.baseAddress, secretlen: UInt32(secret.count),
                                ad: ad.baseAddress, adlen: UInt32(ad.count),
                                t_cost: UInt32(parameters.iterations), m_cost: UInt32(parameters.memoryKiB),
                                lanes: UInt32(parameters.parallelism), threads: UInt32(parameters.parallelism),
                                version: UInt32(ARGON2_VERSION_13.rawValue), allocate_cbk: nil, free_cbk: nil,
                                flags: 0  // ARGON2_DEFAULT_FLAGS, a UINT32_C() macro Swift cannot import
                            )
                            return argon2id_ctx(&context)
                        }
                    }
                }
            }
        }
        guard status == ARGON2_OK.rawValue else { throw Argon2Error(code: status) }
        return output
    }

    /// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$tag`) of `password` with a fresh random salt.
    public static func hash(password: [UInt8], parameters: Argon2Parameters) throws(Argon2Error) -> String {
        let salt = SecureRandom.bytes(Self.saltLength)
        let length = argon2_encodedlen(
            UInt32(parameters.iterations), UInt32(parameters.memoryKiB), UInt32(parameters.parallelism),
            UInt32(salt.count), UInt32(Self.tagLength), Argon2_id
        )
        var encoded = [CChar](repeating: 0, count: length)
        let status = argon2id_hash_encoded(
            UInt32(parameters.iterations), UInt32(parameters.memoryKiB), UInt32(parameters.parallelism),
            password, password.count, salt, salt.count, Self.tagLength, &encoded, length
        )
        guard status == ARGON2_OK.rawValue else { throw Argon2Error(code: status) }
        return encoded.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Whether `password` matches the PHC string (compared in constant time by libargon2). A string
    /// that is not an Argon2id PHC string never matches.
    public static func verify(password: [UInt8], encoded: String) -> Bool {
        guard PHCString(encoded) != nil else { return false }
        return argon2id_verify(encoded, password, password.count) == ARGON2_OK.rawValue
    }
}

/// The parameters of an Argon2id PHC string, for deciding whether a stored hash needs re-hashing.
public struct PHCString: Sendable, Equatable {
    public let version: Int
    public let parameters: Argon2Parameters

    /// Parses `$argon2id$v=19$m=M,t=T,p=P$SALT$TAG`; nil for anything else.
    public init?(_ text: String) {
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0].isEmpty, fields[1] == "argon2id", fields[2].hasPrefix("v="),
            let version = Int(fields[2].dropFirst(2)), !fields[4].isEmpty, !fields[5].isEmpty
        else { return nil }
        var values: [Substring: Int] = [:]
        for pair in fields[3].split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int(parts[1]), value > 0 else { return nil }
            values[parts[0]] = value
        }
        guard values.count == 3, let m = values["m"], let t = values["t"], let p = values["p"] else { return nil }
        self.version = version
        self.parameters = Argon2Parameters(memoryKiB: m, iterations: t, parallelism: p)
    }

    /// Whether a hash made with these settings should be replaced after the next successful login.
    public func needsRehash(for configured: Argon2Parameters) -> Bool {
        self.version != Int(ARGON2_VERSION_13.rawValue) || self.parameters != configured
    }
}
