//! An in-memory ONNX graph that serializes to a `ModelProto`.
//!
//! Large weights are written as external data (a separate file that ONNX
//! Runtime maps or reads at load time), so the `.onnx` file stays small and far
//! from protobuf's 2 GiB limit, whatever the model size.

use super::proto::Encoder;

/// ONNX tensor element types used by Arbor (values of `TensorProto.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// `FLOAT`.
    F32 = 1,
    /// `INT32`.
    I32 = 6,
    /// `INT64`.
    I64 = 7,
    /// `FLOAT16`.
    F16 = 10,
    /// `BFLOAT16`.
    Bf16 = 16,
}

/// A dimension of a graph input or output.
#[derive(Clone, Debug)]
pub enum Dim {
    /// A size known when the graph is built.
    Fixed(i64),
    /// A symbolic size, fixed per run (the same name means the same size).
    Named(&'static str),
}

/// An attribute value of a node.
#[derive(Clone, Debug)]
pub enum Attr {
    /// An `INT` attribute.
    Int(i64),
    /// A `FLOAT` attribute.
    Float(f32),
    /// An `INTS` attribute.
    Ints(Vec<i64>),
}

/// Where an initializer's bytes live.
#[derive(Clone, Debug)]
pub enum TensorData {
    /// Small constants embedded in the graph.
    Inline(Vec<u8>),
    /// A byte range of a file beside the model, by relative path.
    External {
        /// The file, relative to the model's directory.
        location: String,
        /// Byte offset of the tensor in the file.
        offset: u64,
        /// Byte length of the tensor.
        length: u64,
    },
}

struct Initializer {
    name: String,
    elem: ElemType,
    dims: Vec<i64>,
    data: TensorData,
}

struct Node {
    op: String,
    domain: &'static str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<(String, Attr)>,
}

struct ValueInfo {
    name: String,
    elem: ElemType,
    dims: Vec<Dim>,
}

/// Builds a graph node by node; names of intermediate values are generated.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<Node>,
    initializers: Vec<Initializer>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    counter: usize,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a graph input and returns its name.
    pub fn input(&mut self, name: &str, elem: ElemType, dims: Vec<Dim>) -> String {
        self.inputs.push(ValueInfo {
            name: name.into(),
            elem,
            dims,
        });
        name.into()
    }

    /// Declares `value` as a graph output named `name`.
    pub fn output(&mut self, value: &str, name: &str, elem: ElemType, dims: Vec<Dim>) {
        let v = value.to_string();
        self.op1("Identity", &[&v], vec![]);
        // Rename the Identity's output to the public name.
        let node = self.nodes.last_mut().expect("just pushed");
        node.outputs[0] = name.into();
        self.outputs.push(ValueInfo {
            name: name.into(),
            elem,
            dims,
        });
    }

    /// Adds a node whose one output is the graph output `name`, with no
    /// Identity in between: a caller that binds the same buffer as one of the
    /// node's inputs and as this output lets an in-place kernel (ScatterND)
    /// skip copying it.
    pub fn op_output(
        &mut self,
        op: &str,
        inputs: &[&str],
        name: &str,
        elem: ElemType,
        dims: Vec<Dim>,
    ) {
        self.nodes.push(Node {
            op: op.into(),
            domain: "",
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![name.into()],
            attrs: Vec::new(),
        });
        self.outputs.push(ValueInfo {
            name: name.into(),
            elem,
            dims,
        });
    }

    /// Adds a node with several outputs, named by the caller: an empty name
    /// leaves that optional output (or, in `inputs`, that optional input)
    /// absent. An output named like a graph output declared with
    /// [`Graph::declare_output`] is that output, with no Identity in between
    /// (for caches a kernel updates in place, bound as input and output).
    pub fn op_multi(
        &mut self,
        domain: &'static str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) {
        self.nodes.push(Node {
            op: op.into(),
            domain,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
    }

    /// Declares a graph output that some node names as its output directly
    /// (see [`Graph::op_multi`]).
    pub fn declare_output(&mut self, name: &str, elem: ElemType, dims: Vec<Dim>) {
        self.outputs.push(ValueInfo {
            name: name.into(),
            elem,
            dims,
        });
    }

    /// A fresh name for an intermediate value, for [`Graph::op_multi`].
    pub fn value_name(&mut self) -> String {
        self.fresh("v")
    }

    /// Nodes that run on every forward pass: all but those computed from
    /// initializers alone, which ONNX Runtime folds into constants when it
    /// loads the graph (the weight concatenations of fused projections).
    pub fn step_nodes(&self) -> usize {
        let mut constant: std::collections::HashSet<&str> =
            self.initializers.iter().map(|i| i.name.as_str()).collect();
        let mut running = 0;
        // Nodes are added in topological order, so one pass sees every
        // producer before its consumers.
        for n in &self.nodes {
            if !n.inputs.is_empty()
                && n.inputs
                    .iter()
                    .all(|i| i.is_empty() || constant.contains(i.as_str()))
            {
                constant.extend(n.outputs.iter().map(String::as_str));
            } else {
                running += 1;
            }
        }
        running
    }

    /// Adds a weight or constant tensor.
    pub fn initializer(
        &mut self,
        name: &str,
        elem: ElemType,
        dims: Vec<i64>,
        data: TensorData,
    ) -> String {
        self.initializers.push(Initializer {
            name: name.into(),
            elem,
            dims,
            data,
        });
        name.into()
    }

    /// An int64 constant.
    pub fn const_i64(&mut self, dims: Vec<i64>, values: &[i64]) -> String {
        let name = self.fresh("c");
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(&name, ElemType::I64, dims, TensorData::Inline(bytes))
    }

    /// A float32 constant.
    pub fn const_f32(&mut self, dims: Vec<i64>, values: &[f32]) -> String {
        let name = self.fresh("c");
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(&name, ElemType::F32, dims, TensorData::Inline(bytes))
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// Adds a node with one output and returns the output's name.
    pub fn op1(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.op1_in("", op, inputs, attrs)
    }

    /// Like [`Graph::op1`], for an operator of another domain than ONNX's
    /// (`com.microsoft`: ONNX Runtime's contrib operators, version 1).
    pub fn op1_in(
        &mut self,
        domain: &'static str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh("v");
        self.nodes.push(Node {
            op: op.into(),
            domain,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
        out
    }

    /// Serializes the model with the given opset.
    pub fn to_model_bytes(&self, opset: i64, producer: &str, doc: &str) -> Vec<u8> {
        let mut g = Encoder::new();
        for n in &self.nodes {
            let mut e = Encoder::new();
            for i in &n.inputs {
                e.string(1, i);
            }
            for o in &n.outputs {
                e.string(2, o);
            }
            e.string(4, &n.op);
            for (name, a) in &n.attrs {
                let mut ae = Encoder::new();
                ae.string(1, name);
                match a {
                    Attr::Float(f) => {
                        ae.float(2, *f);
                        ae.int(20, 1);
                    }
                    Attr::Int(i) => {
                        ae.int(3, *i);
                        ae.int(20, 2);
                    }
                    Attr::Ints(is) => {
                        ae.packed_ints(8, is);
                        ae.int(20, 7);
                    }
                }
                e.message(5, ae);
            }
            if !n.domain.is_empty() {
                e.string(7, n.domain);
            }
            g.message(1, e);
        }
        g.string(2, "arbor");
        for t in &self.initializers {
            let mut te = Encoder::new();
            te.packed_ints(1, &t.dims);
            te.int(2, t.elem as i64);
            te.string(8, &t.name);
            match &t.data {
                TensorData::Inline(bytes) => te.bytes(9, bytes),
                TensorData::External {
                    location,
                    offset,
                    length,
                } => {
                    for (k, v) in [
                        ("location", location.clone()),
                        ("offset", offset.to_string()),
                        ("length", length.to_string()),
                    ] {
                        let mut kv = Encoder::new();
                        kv.string(1, k);
                        kv.string(2, &v);
                        te.message(13, kv);
                    }
                    te.int(14, 1);
                }
            }
            g.message(5, te);
        }
        for (field, list) in [(11, &self.inputs), (12, &self.outputs)] {
            for vi in list {
                g.message(field, value_info(vi));
            }
        }
        let mut m = Encoder::new();
        m.int(1, 8); // ir_version
        m.string(2, producer);
        m.string(6, doc);
        m.message(7, g);
        let mut os = Encoder::new();
        os.string(1, "");
        os.int(2, opset);
        m.message(8, os);
        let mut domains: Vec<&str> = self
            .nodes
            .iter()
            .map(|n| n.domain)
            .filter(|d| !d.is_empty())
            .collect();
        domains.sort_unstable();
        domains.dedup();
        for d in domains {
            let mut os = Encoder::new();
            os.string(1, d);
            os.int(2, 1);
            m.message(8, os);
        }
        m.finish()
    }
}

fn value_info(vi: &ValueInfo) -> Encoder {
    let mut shape = Encoder::new();
    for d in &vi.dims {
        let mut de = Encoder::new();
        match d {
            Dim::Fixed(v) => de.int(1, *v),
            Dim::Named(s) => de.string(2, s),
        }
        shape.message(1, de);
    }
    let mut tt = Encoder::new();
    tt.int(1, vi.elem as i64);
    tt.message(2, shape);
    let mut ty = Encoder::new();
    ty.message(1, tt);
    let mut e = Encoder::new();
    e.string(1, &vi.name);
    e.message(2, ty);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_nodes_leave_out_what_folds_into_constants() {
        let mut g = Graph::new();
        let x = g.input("x", ElemType::F32, vec![Dim::Fixed(2)]);
        let a = g.const_f32(vec![2], &[1.0, 2.0]);
        let b = g.const_f32(vec![2], &[3.0, 4.0]);
        // Folded: its inputs are constants, and so is what it feeds alone.
        let ab = g.op1("Add", &[&a, &b], vec![]);
        let neg = g.op1("Neg", &[&ab], vec![]);
        // Runs: it reads the graph input.
        let y = g.op1("Mul", &[&x, &neg], vec![]);
        g.output(&y, "y", ElemType::F32, vec![Dim::Fixed(2)]);
        // Mul and the output's Identity.
        assert_eq!(g.step_nodes(), 2);
    }
}
