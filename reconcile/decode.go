package reconcile

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// decodeDocuments strictly decodes every document into Clusters and
// PlacementPolicies. Unknown fields, wrong types, duplicate keys and
// unsupported kinds are errors; decoding goes on after an error so that
// every problem is reported. Defaults are applied (see setDefaults).
func decodeDocuments(docs []*document) (*Fleet, ErrorList) {
	f := &Fleet{}
	var errs ErrorList
	for _, d := range docs {
		dec := decoder{doc: d}
		root := resolveAlias(d.node)
		if root.Kind != yaml.MappingNode {
			errs = append(errs, d.errorf(nil, "expected a YAML mapping (an object), got %s", nodeKind(root)))
			continue
		}
		apiVersion, kind := scalarField(root, "apiVersion"), scalarField(root, "kind")
		switch {
		case apiVersion == APIVersion && kind == KindCluster:
			c := &Cluster{doc: d}
			dec.decode(root, reflect.ValueOf(c).Elem(), nil)
			setClusterDefaults(c)
			if dec.nodes <= maxDecodeNodes {
				f.Clusters = append(f.Clusters, c)
			}
		case apiVersion == APIVersion && kind == KindPlacementPolicy:
			p := &PlacementPolicy{doc: d}
			dec.decode(root, reflect.ValueOf(p).Elem(), nil)
			if dec.nodes <= maxDecodeNodes { // else half-decoded: validating it is noise
				f.Policies = append(f.Policies, p)
			}
		case apiVersion != APIVersion:
			dec.errs = append(dec.errs, d.errorf(fieldPath{}.child("apiVersion"),
				"unsupported apiVersion %q (kind %q): a fleet holds only %s Cluster and PlacementPolicy", apiVersion, kind, APIVersion))
		default:
			dec.errs = append(dec.errs, d.errorf(fieldPath{}.child("kind"),
				"unsupported kind %q: want %s or %s", kind, KindCluster, KindPlacementPolicy))
		}
		if kind == "Kustomization" && !d.kustomized() {
			last := dec.errs[len(dec.errs)-1]
			last.Message += "; only a kustomization at the fleet path itself is built (point the fleet path at its directory)"
		}
		errs = append(errs, dec.errs...)
	}
	return f, errs
}

// setClusterDefaults fills the documented defaults.
func setClusterDefaults(c *Cluster) {
	if c.Spec.Namespaces.Mode == "" {
		c.Spec.Namespaces.Mode = NamespaceModeSame
	}
	if r := c.Spec.Credentials.SecretRef; r != nil && r.Key == "" {
		r.Key = DefaultSecretKey
	}
}

func scalarField(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if v := resolveAlias(m.Content[i+1]); v.Kind == yaml.ScalarNode {
				return v.Value
			}
		}
	}
	return ""
}

// maxDecodeNodes bounds the YAML nodes decoded for one document, counting
// every expansion of an alias (a "billion laughs" document is refused).
const maxDecodeNodes = 100000

// decoder decodes yaml nodes into Go values by their json tags, strictly.
type decoder struct {
	doc   *document
	errs  ErrorList
	nodes int
}

func (d *decoder) fail(path fieldPath, format string, args ...any) {
	d.errs = append(d.errs, d.doc.errorf(path, format, args...))
}

// failAt reports at node n when the rendered document is its own source
// (the line of the first of two duplicate keys would be wrong).
func (d *decoder) failAt(n *yaml.Node, path fieldPath, format string, args ...any) {
	e := d.doc.errorf(path, format, args...)
	if d.doc.src == d.doc.node && n.Line > 0 {
		e.Line = n.Line
	}
	d.errs = append(d.errs, e)
}

var quantityType = reflect.TypeFor[resource.Quantity]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path fieldPath) {
	d.nodes++
	if d.nodes > maxDecodeNodes {
		if d.nodes == maxDecodeNodes+1 {
			d.fail(path, "document too large: more than %d values (counting alias expansions)", maxDecodeNodes)
		}
		return
	}
	n = resolveAlias(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		v.SetZero()
		return
	}
	if v.Type() == quantityType {
		d.decodeQuantity(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, "expected a list, got %s", nodeKind(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), path.index(i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(path, "expected a string, got %s%s", nodeKind(n), quoteHint(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.fail(path, "expected true or false, got %s", nodeKind(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.fail(path, "expected true or false: %v", err)
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("reconcile: decoder does not support %s", v.Type()))
	}
}

func (d *decoder) decodeQuantity(n *yaml.Node, v reflect.Value, path fieldPath) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		d.fail(path, "expected a quantity such as \"4\", \"500m\" or \"2Ti\", got %s", nodeKind(n))
		return
	}
	q, err := resource.ParseQuantity(n.Value)
	if err != nil {
		d.fail(path, "invalid quantity %q: want a number with an optional suffix such as 500m, 2Gi or 1k", n.Value)
		return
	}
	v.Set(reflect.ValueOf(q))
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path fieldPath) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected an object, got %s", nodeKind(n))
		return
	}
	fields := structFields(v.Type())
	var seen map[string]bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolveAlias(n.Content[i])
		name := k.Value
		idx, ok := fields[name]
		if !ok || k.Kind != yaml.ScalarNode {
			d.fail(path.child(name), "unknown field")
			continue
		}
		if seen == nil {
			seen = make(map[string]bool, len(n.Content)/2)
		}
		if seen[name] {
			d.failAt(k, path.child(name), "duplicate field")
			continue
		}
		seen[name] = true
		d.decode(n.Content[i+1], v.Field(idx), path.child(name))
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path fieldPath) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a map of strings, got %s", nodeKind(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolveAlias(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.fail(path, "map keys must be strings, got %s", nodeKind(k))
			continue
		}
		kv := reflect.ValueOf(k.Value)
		if m.MapIndex(kv).IsValid() {
			d.failAt(k, path.key(k.Value), "duplicate key")
			continue
		}
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(n.Content[i+1], ev, path.key(k.Value))
		m.SetMapIndex(kv, ev)
	}
	v.Set(m)
}

var fieldCache sync.Map // reflect.Type -> map[string]int

// structFields maps json names to field indexes; untagged and unexported
// fields are not decodable.
func structFields(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if !ok || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		m[name] = i
	}
	fieldCache.Store(t, m)
	return m
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!null":
			return "null"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		default:
			return fmt.Sprintf("%s %s", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
		}
	default:
		return "an unexpected YAML node"
	}
}

// quoteHint suggests quoting a scalar that YAML read as a non-string.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!str" && n.ShortTag() != "!!null" {
		return fmt.Sprintf(" (quote it: \"%s\")", n.Value)
	}
	return ""
}
