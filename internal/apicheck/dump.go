package main

import (
	"fmt"
	"go/types"
	"sort"
	"strings"
)

// dump renders the exported API of pkg as sorted text: constants (with
// values), variables, functions, then each type with its definition and
// its exported methods. Types outside pkg are qualified by import path, so
// a type that moves between two packages of the same name is a change too.
func dump(pkg *types.Package) string {
	qf := func(p *types.Package) string {
		if p == pkg {
			return ""
		}
		return p.Path()
	}
	var consts, vars, funcs, typs []string
	for _, name := range pkg.Scope().Names() { // sorted
		obj := pkg.Scope().Lookup(name)
		if !obj.Exported() {
			continue
		}
		switch o := obj.(type) {
		case *types.Const:
			consts = append(consts, fmt.Sprintf("const %s %s = %s", name, types.TypeString(o.Type(), qf), o.Val().ExactString()))
		case *types.Var:
			vars = append(vars, fmt.Sprintf("var %s %s", name, types.TypeString(o.Type(), qf)))
		case *types.Func:
			funcs = append(funcs, types.ObjectString(o, qf))
		case *types.TypeName:
			typs = append(typs, typeDecl(o, qf))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s // %s\n", pkg.Name(), pkg.Path())
	for _, group := range [][]string{consts, vars, funcs} {
		if len(group) > 0 {
			b.WriteString("\n" + strings.Join(group, "\n") + "\n")
		}
	}
	for _, t := range typs { // a blank line before each type and its methods
		b.WriteString("\n" + t + "\n")
	}
	return b.String()
}

// typeDecl renders one type: its definition, then its exported methods
// (promoted ones included), each with the receiver it needs: T when a value
// has the method, *T when only a pointer does.
func typeDecl(obj *types.TypeName, qf types.Qualifier) string {
	name := obj.Name()
	if obj.IsAlias() {
		return fmt.Sprintf("type %s = %s", name, types.TypeString(types.Unalias(obj.Type()), qf))
	}
	named := obj.Type().(*types.Named)
	decl := "type " + name
	if tp := named.TypeParams(); tp.Len() > 0 {
		params := make([]string, tp.Len())
		for i := range tp.Len() {
			params[i] = tp.At(i).Obj().Name() + " " + types.TypeString(tp.At(i).Constraint(), qf)
		}
		decl += "[" + strings.Join(params, ", ") + "]"
	}
	decl += " " + underlying(named.Underlying(), qf)
	if types.IsInterface(named) {
		return decl // its methods are in its definition
	}
	values, pointers := types.NewMethodSet(named), types.NewMethodSet(types.NewPointer(named))
	var methods []string
	for i := range pointers.Len() {
		m := pointers.At(i).Obj().(*types.Func)
		if !m.Exported() {
			continue
		}
		recv := "*" + name
		if values.Lookup(m.Pkg(), m.Name()) != nil {
			recv = name
		}
		methods = append(methods, fmt.Sprintf("func (%s) %s%s", recv, m.Name(), signature(m, qf)))
	}
	sort.Strings(methods)
	return strings.Join(append([]string{decl}, methods...), "\n")
}

// underlying renders a type's definition: struct fields (in order, with
// tags) and interface methods one per line, anything else inline. Hidden
// members are noted because they matter to users: unexported fields forbid
// positional literals, unexported methods forbid other implementations.
func underlying(t types.Type, qf types.Qualifier) string {
	var lines []string
	hidden := false
	switch u := t.(type) {
	case *types.Struct:
		for i := range u.NumFields() {
			f := u.Field(i)
			line := "\t" + types.TypeString(f.Type(), qf)
			if !f.Embedded() {
				line = "\t" + f.Name() + " " + line[1:]
			}
			if tag := u.Tag(i); tag != "" {
				line += " `" + tag + "`"
			}
			if f.Exported() {
				lines = append(lines, line)
			}
			hidden = hidden || !f.Exported()
		}
	case *types.Interface:
		for i := range u.NumEmbeddeds() { // constraint terms (~int | ...)
			if !types.IsInterface(u.EmbeddedType(i)) {
				lines = append(lines, "\t"+types.TypeString(u.EmbeddedType(i), qf))
			}
		}
		for i := range u.NumMethods() { // sorted, embedded ones included
			if m := u.Method(i); m.Exported() {
				lines = append(lines, "\t"+m.Name()+signature(m, qf))
			}
			hidden = hidden || !u.Method(i).Exported()
		}
	default:
		return types.TypeString(t, qf)
	}
	kind, members := "struct", "fields"
	if types.IsInterface(t) {
		kind, members = "interface", "methods"
	}
	if hidden {
		lines = append(lines, "\t// unexported "+members)
	}
	return kind + " {\n" + strings.Join(append(lines, "}"), "\n")
}

// signature renders a method's parameters and results, without "func".
func signature(m *types.Func, qf types.Qualifier) string {
	return strings.TrimPrefix(types.TypeString(m.Signature(), qf), "func")
}
