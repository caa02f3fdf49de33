// SPDX-License-Identifier: Apache-2.0
public import GatehouseCrypto

/// Key material as a verifier or signer uses it.
public enum KeyMaterial: Sendable {
    case asymmetric(EVPKey)
    case secret([UInt8])
}

/// A JSON Web Key (RFC 7517) of type RSA, EC, OKP (Ed25519) or oct.
public struct JWK: Sendable, Hashable {
    /// The JSON members, as read or as written.
    public private(set) var json: JSONObject

    /// `kty`.
    public var keyType: String { self.json["kty"]?.stringValue ?? "" }
    /// `kid`, if any.
    public var keyID: String? { self.json["kid"]?.stringValue }
    /// `alg`, if any (the only algorithm the key may be used with).
    public var algorithm: String? { self.json["alg"]?.stringValue }
    /// `use`, if any (`sig` or `enc`).
    public var use: String? { self.json["use"]?.stringValue }

    /// Validates the members that identify the key; the key material itself is checked by `makeKey`.
    public init(json: JSONObject) throws(KeyError) {
        guard let kty = json["kty"]?.stringValue else { throw KeyError("JWK without a string \"kty\"") }
        for name in ["kid", "alg", "use"] where json[name] != nil && json[name]?.stringValue == nil {
            throw KeyError("JWK member \"\(name)\" must be a string")
        }
        let required: [String]
        switch kty {
        case "RSA": required = ["n", "e"]
        case "EC": required = ["crv", "x", "y"]
        case "OKP": required = ["crv", "x"]
        case "oct": required = ["k"]
        default: throw KeyError("JWK kty \"\(kty)\" is not supported (RSA, EC, OKP, oct)")
        }
        for name in required where json[name]?.stringValue == nil {
            throw KeyError("\(kty) JWK needs a string \"\(name)\"")
        }
        self.json = json
    }

    /// Parses a JWK from JSON text.
    public init(jsonText: String) throws(KeyError) {
        let value: JSONValue
        do { value = try JSONReader.parse(jsonText) } catch { throw KeyError("JWK is not valid JSON (\(error))") }
        guard let object = value.objectValue else { throw KeyError("JWK is not a JSON object") }
        try self.init(json: object)
    }

    private func bytes(_ name: String) throws(KeyError) -> [UInt8] {
        guard let text = self.json[name]?.stringValue, let bytes = Base64URL.decode(text) else {
            throw KeyError("\(self.keyType) JWK member \"\(name)\" is not base64url")
        }
        return bytes
    }

    private func optionalBytes(_ name: String) throws(KeyError) -> [UInt8]? {
        self.json[name] == nil ? nil : try self.bytes(name)
    }

    /// The key this JWK describes.
    public func makeKey() throws(KeyError) -> KeyMaterial {
        do {
            switch self.keyType {
            case "RSA":
                let components = RSAComponents(
                    modulus: try self.bytes("n"), publicExponent: try self.bytes("e"),
                    privateExponent: try self.optionalBytes("d"),
                    prime1: try self.optionalBytes("p"), prime2: try self.optionalBytes("q"),
                    exponent1: try self.optionalBytes("dp"), exponent2: try self.optionalBytes("dq"),
                    coefficient: try self.optionalBytes("qi")
                )
                return .asymmetric(try EVPKey.rsa(components))
            case "EC":
                guard let crv = self.json["crv"]?.stringValue, let curve = EVPKey.Curve(rawValue: crv) else {
                    throw KeyError("EC JWK crv must be P-256, P-384 or P-521")
                }
                let components = ECComponents(
                    curve: curve, x: try self.bytes("x"), y: try self.bytes("y"), d: try self.optionalBytes("d")
                )
                return .asymmetric(try EVPKey.ec(components))
            case "OKP":
                guard self.json["crv"]?.stringValue == "Ed25519" else { throw KeyError("OKP JWK crv must be Ed25519") }
                return .asymmetric(try EVPKey.ed25519(publicKey: try self.bytes("x"), privateKey: try self.optionalBytes("d")))
            default:
                return .secret(try self.bytes("k"))
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError("\(self.keyType) JWK does not describe a valid key: \(error)")
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, base64url.
    public var thumbprint: String {
        let names: [String]
        switch self.keyType {
        case "RSA": names = ["e", "kty", "n"]
        case "EC": names = ["crv", "kty", "x", "y"]
        case "OKP": names = ["crv", "kty", "x"]
        default: names = ["k", "kty"]
        }
        var canonical = JSONObject()
        for name in names { canonical[name] = self.json[name] }
        return Base64URL.encode(Digest.sha256.hash(Array(canonical.serialized.utf8)))
    }

    /// The JWK of `key`: public members only unless `includePrivate`. `kid` defaults to the thumbprint.
    public init(key: EVPKey, keyID: String? = nil, algorithm: Algorithm? = nil, includePrivate: Bool = false) {
        var json = JSONObject()
        func put(_ name: String, _ bytes: [UInt8]?) {
            if let bytes { json[name] = .string(Base64URL.encode(bytes)) }
        }
        switch key.kind {
        case .rsa:
            let rsa = key.rsaComponents()!
            json["kty"] = .string("RSA")
            put("n", rsa.modulus)
            put("e", rsa.publicExponent)
            if includePrivate {
                put("d", rsa.privateExponent)
                put("p", rsa.prime1)
                put("q", rsa.prime2)
                put("dp", rsa.exponent1)
                put("dq", rsa.exponent2)
                put("qi", rsa.coefficient)
            }
        case .ec:
            let ec = key.ecComponents()!
            json["kty"] = .string("EC")
            json["crv"] = .string(ec.curve.rawValue)
            put("x", ec.x)
            put("y", ec.y)
            if includePrivate { put("d", ec.d) }
        case .ed25519:
            json["kty"] = .string("OKP")
            json["crv"] = .string("Ed25519")
            put("x", key.ed25519PublicKey())
            if includePrivate { put("d", key.ed25519PrivateKey()) }
        }
        self.json = json
        self.finish(keyID: keyID, algorithm: algorithm)
    }

    /// The JWK of an HMAC secret (never published in a JWKS).
    public init(secret: [UInt8], keyID: String? = nil, algorithm: Algorithm? = nil) {
        self.json = JSONObject(["kty": .string("oct"), "k": .string(Base64URL.encode(secret))])
        self.finish(keyID: keyID, algorithm: algorithm)
    }

    private mutating func finish(keyID: String?, algorithm: Algorithm?) {
        let kid = keyID ?? self.thumbprint
        self.json["kid"] = .string(kid)
        if let algorithm {
            self.json["use"] = .string("sig")
            self.json["alg"] = .string(algorithm.rawValue)
        }
    }
}

/// A JWK Set (RFC 7517 §5).
public struct JWKS: Sendable, Hashable {
    public var keys: [JWK]

    public init(keys: [JWK]) { self.keys = keys }

    /// Parses a JWKS document. Keys of unsupported types are skipped, as RFC 7517 §5 asks; a key of
    /// a supported type that is malformed is an error.
    public init(jsonText: String) throws(KeyError) {
        let value: JSONValue
        do { value = try JSONReader.parse(jsonText) } catch { throw KeyError("JWKS is not valid JSON (\(error))") }
        guard let keys = value.objectValue?["keys"]?.arrayValue else { throw KeyError("JWKS needs a \"keys\" array") }
        var parsed: [JWK] = []
        for (index, entry) in keys.enumerated() {
            guard let object = entry.objectValue else { throw KeyError("JWKS keys[\(index)] is not an object") }
            guard let kty = object["kty"]?.stringValue, ["RSA", "EC", "OKP", "oct"].contains(kty) else { continue }
            do { parsed.append(try JWK(json: object)) } catch { throw KeyError("JWKS keys[\(index)]: \(error.message)") }
        }
        self.keys = parsed
    }

    /// `{"keys":[…]}`.
    public var serialized: String {
        JSONObject(["keys": .array(self.keys.map { .object($0.json) })]).serialized
    }
}
