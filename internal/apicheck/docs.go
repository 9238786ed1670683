package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"sort"

	"golang.org/x/tools/go/packages"
)

// undocumented lists, as "file:line: pkg.Name", each exported identifier
// of the packages (import paths, from the module at dir) that has no doc
// comment: declarations, methods, and the exported fields and interface
// methods of exported types, which revive does not check. A trailing line
// comment counts for a field or a method; a group's comment counts for the
// constants and variables of its group, as go doc shows them together.
func undocumented(dir string, paths ...string) ([]string, error) {
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax, Dir: dir}
	pkgs, err := packages.Load(cfg, paths...)
	if err != nil {
		return nil, err
	}
	var found []place
	for _, p := range pkgs {
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("%s: %w", p.PkgPath, p.Errors[0])
		}
		for _, f := range p.Syntax {
			found = append(found, fileUndocumented(p.Fset, p.Name, f)...)
		}
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		return a.Filename < b.Filename || a.Filename == b.Filename && a.Line < b.Line
	})
	out := make([]string, len(found))
	for i, p := range found {
		out[i] = fmt.Sprintf("%s:%d: %s", p.Filename, p.Line, p.name)
	}
	return out, nil
}

// place is an undocumented identifier and where it is declared.
type place struct {
	token.Position
	name string // pkg.Name
}

func fileUndocumented(fset *token.FileSet, pkg string, f *ast.File) []place {
	var out []place
	missing := func(n ast.Node, name string) {
		out = append(out, place{fset.Position(n.Pos()), pkg + "." + name})
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			name := d.Name.Name
			if d.Recv != nil {
				recv := receiver(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				name = recv + "." + name
			}
			if ast.IsExported(d.Name.Name) && d.Doc == nil {
				missing(d, name)
			}
		case *ast.GenDecl:
			// A lone declaration's comment sits on the GenDecl.
			lone := d.Doc != nil && d.Lparen == token.NoPos
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !ast.IsExported(s.Name.Name) {
						continue
					}
					if s.Doc == nil && s.Comment == nil && !lone {
						missing(s, s.Name.Name)
					}
					members(s.Type, s.Name.Name, missing)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if ast.IsExported(n.Name) && s.Doc == nil && s.Comment == nil && d.Doc == nil {
							missing(n, n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// members reports the undocumented exported fields of a struct type and
// methods of an interface type (in nested struct types too), by owner.Name.
func members(t ast.Expr, owner string, missing func(ast.Node, string)) {
	var list *ast.FieldList
	switch t := t.(type) {
	case *ast.StructType:
		list = t.Fields
	case *ast.InterfaceType:
		list = t.Methods
	default:
		return
	}
	for _, f := range list.List {
		names := make([]string, 0, len(f.Names))
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
		if len(f.Names) == 0 { // embedded: named by its type
			if _, isIface := t.(*ast.InterfaceType); isIface {
				continue // an embedded interface or constraint has its own docs
			}
			names = append(names, receiver(f.Type))
		}
		for _, n := range names {
			if !ast.IsExported(n) {
				continue
			}
			if f.Doc == nil && f.Comment == nil {
				missing(f, owner+"."+n)
			}
			members(f.Type, owner+"."+n, missing)
		}
	}
}

// receiver is the type name of a receiver or embedded field: T, *T, T[P],
// pkg.T.
func receiver(t ast.Expr) string {
	switch t := t.(type) {
	case *ast.StarExpr:
		return receiver(t.X)
	case *ast.IndexExpr:
		return receiver(t.X)
	case *ast.IndexListExpr:
		return receiver(t.X)
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.Ident:
		return t.Name
	}
	return ""
}
