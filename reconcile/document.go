package reconcile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// document is one YAML document of a rendered fleet, with where it came
// from. node is the rendered content; src is the same object as written in
// its source file and gives line numbers. Without kustomize both are the
// same node; with kustomize, src is found through the origin annotation and
// may be nil when the origin is unknown (generated objects).
type document struct {
	file string // source file, slash-separated, relative to the repo root
	line int    // line where the object starts in file; 0 when unknown
	node *yaml.Node
	src  *yaml.Node
	// findSrc, when set, finds src on first use (parsing the source file
	// only when a line number is needed).
	findSrc func() *yaml.Node
	// kustomization is the top kustomization file when kustomize built
	// the document, else "".
	kustomization string
}

// source names where the object was declared without parsing again:
// "file:line" when the line is known, "file" else, "" for objects built in
// code.
func (d *document) source() string {
	switch {
	case d == nil:
		return ""
	case d.line > 0:
		return d.file + ":" + strconv.Itoa(d.line)
	default:
		return d.file
	}
}

// kustomized reports whether kustomize built the document.
func (d *document) kustomized() bool { return d.kustomization != "" }

// srcNode returns src, finding it first if needed.
func (d *document) srcNode() *yaml.Node {
	if d.findSrc != nil {
		d.src, d.findSrc = d.findSrc(), nil
		if d.src != nil && d.line == 0 {
			d.line = d.src.Line
		}
	}
	return d.src
}

// pathElem is one step of a field path.
type pathElem struct {
	name  string // field name or map key
	index int    // sequence index when name == "" and isIdx
	kind  elemKind
}

type elemKind uint8

const (
	elemField elemKind = iota // .name
	elemKey                   // [name]: a map key chosen by the user
	elemIndex                 // [index]
)

// fieldPath locates a field in a document, e.g. spec.node.taints[0].effect.
type fieldPath []pathElem

func (p fieldPath) child(name string) fieldPath {
	return append(p[:len(p):len(p)], pathElem{name: name, kind: elemField})
}

func (p fieldPath) key(k string) fieldPath {
	return append(p[:len(p):len(p)], pathElem{name: k, kind: elemKey})
}

func (p fieldPath) index(i int) fieldPath {
	return append(p[:len(p):len(p)], pathElem{index: i, kind: elemIndex})
}

func (p fieldPath) String() string {
	var b strings.Builder
	for i, e := range p {
		switch e.kind {
		case elemField:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e.name)
		case elemKey:
			b.WriteByte('[')
			b.WriteString(e.name)
			b.WriteByte(']')
		case elemIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// lineOf returns the source line of the field at path, else of its
// nearest ancestor present in the source, else the document's line.
func (d *document) lineOf(path fieldPath) int {
	if d == nil {
		return 0
	}
	src := d.srcNode()
	_, line := lookup(src, path, d.line)
	return line
}

// lookup finds the node at path under n. It returns the node (nil when
// the path is not all there) and the line of the deepest step found, or
// line when none is.
func lookup(n *yaml.Node, path fieldPath, line int) (*yaml.Node, int) {
	if n == nil {
		return nil, line
	}
	if n.Line > 0 {
		line = n.Line
	}
	for _, e := range path {
		n = resolveAlias(n)
		var next *yaml.Node
		switch e.kind {
		case elemField, elemKey:
			if n.Kind != yaml.MappingNode {
				return nil, line
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == e.name {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		case elemIndex:
			if n.Kind != yaml.SequenceNode || e.index >= len(n.Content) {
				return nil, line
			}
			next = n.Content[e.index]
			line = next.Line
		}
		if next == nil {
			return nil, line
		}
		n = next
	}
	return resolveAlias(n), line
}

// errorf returns a FieldError at path in d. When kustomize changed or
// added the field, the source line is only the nearest one, and the
// message says so.
func (d *document) errorf(path fieldPath, format string, args ...any) *FieldError {
	e := &FieldError{Field: path.String(), Message: fmt.Sprintf(format, args...)}
	if d == nil {
		return e
	}
	e.File = d.file
	var src *yaml.Node
	src, e.Line = lookup(d.srcNode(), path, d.line)
	if d.kustomization != "" && len(path) > 0 {
		if got, _ := lookup(d.node, path, 0); got != nil && (src == nil || (src.Kind == yaml.ScalarNode && got.Kind == yaml.ScalarNode && src.Value != got.Value)) {
			e.Message += " (value set by kustomize, built from " + d.kustomization + ")"
		}
	}
	return e
}

// where renders "file:line" of the field at path, for messages that point
// at a second place.
func (d *document) where(path fieldPath) string {
	if d == nil {
		return "(unknown)"
	}
	if l := d.lineOf(path); l > 0 {
		return d.file + ":" + strconv.Itoa(l)
	}
	return d.file
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML splits data into its documents' root nodes, skipping empty
// documents. A syntax error is returned as a *FieldError naming file and
// line.
func parseYAML(file string, data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, yamlError(file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		out = append(out, root)
	}
}

// yamlError turns a yaml.v3 error into a FieldError with file and line.
func yamlError(file string, err error) *FieldError {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "did not find expected") {
			// yaml.v3 reports a parser error at the 0-based line of its
			// context (the open collection); +1 is that line, 1-based.
			line++
		}
		return &FieldError{File: file, Line: line, Message: "invalid YAML: " + m[2]}
	}
	return &FieldError{File: file, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}
