package reconcile

import (
	"context"
	"errors"
)

// Decode strictly decodes the rendered documents into a Fleet, applies
// defaults and validates every declaration for the given mode, and the
// number of Clusters against the render's Limits.MaxClusters. All
// problems are returned together as an ErrorList (errors.Is ErrInvalid).
func Decode(r *Rendered, mode Mode) (*Fleet, error) {
	f, errs := decodeDocuments(r.docs)
	// A field that failed to decode holds its zero value; validating it
	// again would only add noise ("required").
	bad := make(map[[2]string]bool, len(errs))
	for _, e := range errs {
		bad[[2]string{e.File, e.Field}] = true
	}
	for _, e := range validateFleet(f, mode, r.limits.withDefaults().MaxClusters) {
		if !bad[[2]string{e.File, e.Field}] {
			errs = append(errs, e)
		}
	}
	return f, errorListOrNil(errs)
}

// DesiredNodes merges each Cluster with the PlacementPolicies selecting it
// into the desired virtual nodes, sorted by name. Conflicting declarations
// (one label key, or one taint key and effect, set to different values
// for the same cluster) are returned as an ErrorList. f must have passed
// Decode without error.
func DesiredNodes(f *Fleet) ([]NodeSpec, error) {
	nodes, errs := desiredNodes(f)
	return nodes, errorListOrNil(errs)
}

// Load renders, decodes, validates and merges the fleet at path inside
// root: the whole pipeline from files to desired nodes. Validation
// problems come back together as an ErrorList.
func Load(ctx context.Context, root, path string, opts ...Option) (*Fleet, []NodeSpec, error) {
	o := newOptions(opts)
	r, err := Render(ctx, root, path, opts...)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && !errors.As(err, new(ErrorList)) {
			return nil, nil, ErrorList{fe}
		}
		return nil, nil, err
	}
	f, err := Decode(r, o.mode)
	if err != nil {
		return f, nil, err
	}
	nodes, err := DesiredNodes(f)
	if err != nil {
		return f, nil, err
	}
	return f, nodes, nil
}
