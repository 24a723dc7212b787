import Foundation
import Micrograph

/// A problem with a model file: which file and what was wrong.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}

extension ResidualUNet {
    /// The network's state as PyTorch's `state_dict` would hold it: parameters, BatchNorm running
    /// statistics and `num_batches_tracked`, under the study's names, float32 (counters int64).
    public func stateTensors() -> [SafetensorsTensor] {
        var tensors: [SafetensorsTensor] = []
        for parameter in parameters {
            tensors.append(SafetensorsTensor(name: parameter.name, shape: parameter.value.shape, float32: parameter.value.values))
        }
        for norm in batchNorms {
            tensors.append(SafetensorsTensor(name: "\(norm.name).running_mean", shape: [norm.channels], float32: norm.runningMean.values))
            tensors.append(SafetensorsTensor(name: "\(norm.name).running_var", shape: [norm.channels], float32: norm.runningVariance.values))
            tensors.append(SafetensorsTensor(name: "\(norm.name).num_batches_tracked", int64: norm.batchesTracked))
        }
        return tensors.sorted { $0.name < $1.name }
    }

    /// Replaces the network's state with `tensors` (state_dict names). Every parameter and
    /// running statistic must be present with the right shape; `num_batches_tracked` is optional.
    /// - Throws: `ModelError` naming the missing, misshapen or unexpected tensor.
    public func loadState(_ tensors: [SafetensorsTensor], file: String) throws {
        var byName: [String: SafetensorsTensor] = [:]
        for tensor in tensors { byName[tensor.name] = tensor }
        var used = Set<String>()
        func take(_ name: String, into target: Tensor) throws {
            guard let tensor = byName[name] else { throw ModelError(file: file, "tensor \(name) is missing") }
            guard tensor.shape == target.shape || (tensor.elementCount == target.count && target.shape.count == 1 && tensor.shape.count == 1) else {
                throw ModelError(file: file, "tensor \(name) has shape \(tensor.shape), the network needs \(target.shape)")
            }
            guard let values = tensor.float32Values else {
                throw ModelError(file: file, "tensor \(name) has dtype \(tensor.dtype.rawValue), expected F32")
            }
            values.withUnsafeBufferPointer { target.data.update(from: $0.baseAddress!, count: target.count) }
            used.insert(name)
        }
        for parameter in parameters { try take(parameter.name, into: parameter.value) }
        for norm in batchNorms {
            try take("\(norm.name).running_mean", into: norm.runningMean)
            try take("\(norm.name).running_var", into: norm.runningVariance)
            let counterName = "\(norm.name).num_batches_tracked"
            if let counter = byName[counterName] {
                norm.batchesTracked = counter.int64Value ?? 0
                used.insert(counterName)
            }
        }
        if let extra = byName.keys.sorted().first(where: { !used.contains($0) }) {
            throw ModelError(file: file, "tensor \(extra) does not belong to a \(architecture.widths)-\(architecture.bottleneckWidth) residual U-Net")
        }
    }

    /// Infers the architecture from state_dict tensor shapes (widths from `downs.i.conv1.weight`).
    public static func architecture(from tensors: [SafetensorsTensor], file: String) throws -> UNetArchitecture {
        var byName: [String: SafetensorsTensor] = [:]
        for tensor in tensors { byName[tensor.name] = tensor }
        var widths: [Int] = []
        var kernel = 3, inputChannels = 1
        while let conv = byName["downs.\(widths.count).conv1.weight"] {
            guard conv.shape.count == 4 else { throw ModelError(file: file, "\(conv.name) is not 4-D") }
            if widths.isEmpty { inputChannels = conv.shape[1]; kernel = conv.shape[2] }
            widths.append(conv.shape[0])
        }
        guard !widths.isEmpty, let bottleneck = byName["bottleneck.conv1.weight"], bottleneck.shape.count == 4,
              let head = byName["final_conv.weight"], head.shape.count == 4 else {
            throw ModelError(file: file, "not a residual U-Net state_dict (downs.0.conv1.weight, bottleneck.conv1.weight or final_conv.weight missing)")
        }
        return UNetArchitecture(widths: widths, bottleneckWidth: bottleneck.shape[0], kernel: kernel,
                                inputChannels: inputChannels, classes: head.shape[0])
    }

    /// Loads a safetensors checkpoint (hrtem's or one converted from the study's PyTorch model).
    /// - Throws: `FormatError` for a damaged file, `ModelError` for tensors that do not fit.
    public static func load(from url: URL) throws -> ResidualUNet {
        let file = try readSafetensors(from: url)
        let architecture = try architecture(from: file.tensors, file: url.path)
        let network = ResidualUNet(architecture: architecture, seed: 0)
        try network.loadState(file.tensors, file: url.path)
        return network
    }

    /// Writes the state as safetensors (atomically), with `metadata` in the header.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        var metadata = metadata
        metadata["layout"] = metadata["layout"] ?? "PyTorch state_dict names, NCHW / OIHW float32"
        try writeSafetensors(SafetensorsFile(tensors: stateTensors(), metadata: metadata), to: url)
    }
}

/// Adam with PyTorch's semantics (bias-corrected moments, eps added after the square root, no
/// weight decay).
public struct Adam: Codable, Sendable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// Steps taken so far (PyTorch's `state['step']`).
    public var step: Int = 0

    public init(learningRate: Double = 1e-4, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    /// One update of every parameter from its accumulated gradient.
    public mutating func update(_ parameters: [Parameter]) {
        step += 1
        let correction1 = 1 - pow(beta1, Double(step))
        let correction2 = 1 - pow(beta2, Double(step))
        let stepSize = Float(learningRate / correction1)
        let root2 = Float(correction2.squareRoot())
        let b1 = Float(beta1), b2 = Float(beta2), eps = Float(epsilon)
        for parameter in parameters {
            let p = parameter.value.data, g = parameter.gradient.data
            let m = parameter.firstMoment.data, v = parameter.secondMoment.data
            for i in 0..<parameter.value.count {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let denominator = v[i].squareRoot() / root2 + eps
                p[i] -= stepSize * m[i] / denominator
            }
        }
    }

    /// Adam's moments as tensors named `<parameter>.exp_avg` / `.exp_avg_sq` (for resuming).
    public func stateTensors(_ parameters: [Parameter]) -> [SafetensorsTensor] {
        parameters.flatMap { p in
            [SafetensorsTensor(name: "\(p.name).exp_avg", shape: p.value.shape, float32: p.firstMoment.values),
             SafetensorsTensor(name: "\(p.name).exp_avg_sq", shape: p.value.shape, float32: p.secondMoment.values)]
        }
    }

    public func loadState(_ tensors: [SafetensorsTensor], into parameters: [Parameter], file: String) throws {
        var byName: [String: SafetensorsTensor] = [:]
        for tensor in tensors { byName[tensor.name] = tensor }
        for p in parameters {
            for (suffix, target) in [("exp_avg", p.firstMoment), ("exp_avg_sq", p.secondMoment)] {
                guard let tensor = byName["\(p.name).\(suffix)"], let values = tensor.float32Values, values.count == target.count else {
                    throw ModelError(file: file, "optimizer state \(p.name).\(suffix) missing or misshapen")
                }
                values.withUnsafeBufferPointer { target.data.update(from: $0.baseAddress!, count: target.count) }
            }
        }
    }
}
